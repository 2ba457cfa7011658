"""phrsync: 43-file (43 แฟ้ม) health data → MOPH-PHR, for Thai provincial health offices."""

__version__ = "0.1.0"
AGENT_NAME = f"phrsync {__version__}"
