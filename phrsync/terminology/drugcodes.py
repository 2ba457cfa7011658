"""What a facility's drug code means in TMT, as the build needs it: a GP for Medication and the substances (SUBS)
for an allergy.

The contract between the code store (``phrsync.terminology.codestore``: TMT releases and facility drug masters
imported by ``phrsync codes import-tmt`` / ``import-drugs``) and the mapping (``phrsync.phr.mapping``). The build
loads one :class:`DrugCodes` (plain dicts, picklable for the build's worker processes) and looks codes up in it;
nothing here reads a file or a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DrugConcept:
    """One local or 24-digit drug code resolved through TMT.

    ``tmtid``/``level`` are what the drug master said (usually a TPU or GPU ID); ``gp`` is the GP reached from it
    (``(GP ID, FSN)``, None when TMT is not imported or the walk ends before a GP); ``substances`` the SUBS reached
    (``(SUBS ID, FSN)``, empty when unknown). ``source`` names the file and date, or the reviewer, behind the row."""

    tmtid: str
    level: str | None
    gp: tuple[str, str] | None
    substances: tuple[tuple[str, str], ...]
    name: str | None
    source: str


@dataclass(frozen=True)
class DrugCodes:
    """Lookups by facility first (its own drug master), then province-wide (a catalogue or table without a facility).

    Keys are the code as the 43 files carry it (DRUG_OPD/DRUG_IPD ``DIDSTD``, DRUGALLERGY ``DRUGALLERGY``): a
    24-digit code or a facility's local code."""

    by_facility: dict[tuple[str, str], DrugConcept] = field(default_factory=dict)
    by_code: dict[str, DrugConcept] = field(default_factory=dict)

    def lookup(self, hcode: str, code: str) -> DrugConcept | None:
        return self.by_facility.get((hcode, code)) or self.by_code.get(code)

    def __bool__(self) -> bool:
        return bool(self.by_facility or self.by_code)

    def __reduce__(self) -> tuple[type[DrugCodes], tuple[dict[tuple[str, str], DrugConcept], dict[str, DrugConcept]]]:
        return DrugCodes, (self.by_facility, self.by_code)
