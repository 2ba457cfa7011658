"""The one MOPH-PHR payload validator, shared by the payload builder and the local test server.

It walks plain dicts (as parsed from JSON) by hand instead of building pydantic models: a typical
one-encounter UpdatePHRv1 payload must validate at well over 20,000 payloads/s per core, and every
problem must be reported at once with its path, not only the first. Rule codes and their basis are
in :mod:`phrsync.phr.rules`; section numbers refer to the PHR API reference (moph-phr-api.md).

Three modules, each one layer: :mod:`.primitives` (the Issue, one run's state, the checks of single values
and code formats), :mod:`.resources` (each resource and the blocks they share) and :mod:`.endpoints` (the
request bodies and the entry points). Import from this package: the modules are its inside. They import one
another relatively so that ``benchmarks/validate_compare.py`` can load another version of the package beside
this one; ``setup.py`` compiles them with mypyc as one unit (see :mod:`phrsync._native`).
"""

from __future__ import annotations

from phrsync.phr.rules import RULES, Rule
from phrsync.phr.systems import (
    PHR_CS,
    SYS_ACTCODE,
    SYS_ALLERGY_CLINICAL,
    SYS_ALLERGY_VERIF,
    SYS_CID,
    SYS_COND_CLINICAL,
    SYS_COND_VERIF,
    SYS_EPRESCRIPTION,
    SYS_HCODE,
    SYS_HN,
    SYS_ICD10,
    SYS_LOINC,
    SYS_MARITAL,
    SYS_SNOMED,
    SYS_TMT,
    SYS_UCUM,
    SYS_VACCINE,
)

from .endpoints import ENDPOINTS, Endpoint, parse_and_validate, validate, validate_json_bytes
from .primitives import Issue, errors, has_errors, warnings

__all__ = [
    "ENDPOINTS", "PHR_CS", "RULES", "SYS_ACTCODE", "SYS_ALLERGY_CLINICAL", "SYS_ALLERGY_VERIF", "SYS_CID",
    "SYS_COND_CLINICAL", "SYS_COND_VERIF", "SYS_EPRESCRIPTION", "SYS_HCODE", "SYS_HN", "SYS_ICD10", "SYS_LOINC",
    "SYS_MARITAL", "SYS_SNOMED", "SYS_TMT", "SYS_UCUM", "SYS_VACCINE", "Endpoint", "Issue", "Rule", "errors",
    "has_errors", "parse_and_validate", "validate", "validate_json_bytes", "warnings",
]
