"""phrsync: 43-file (43 แฟ้ม) health data → MOPH-PHR, for Thai provincial health offices."""

from phrsync import _native

__version__ = "0.1.0"
AGENT_NAME = f"phrsync {__version__}"

_native.install()  # a stale or unwanted compiled module is imported from its source (see _native)
