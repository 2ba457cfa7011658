"""What to do about data MOPH-PHR wants that the 43 files do not carry (f43-structure.md §5).

Every choice is explicit and configurable in ``phrsync.toml``::

    [policies]
    visit_end = "omit"            # omit | estimate | last_update
    visit_minutes_opd = 60        # for visit_end = "estimate"
    visit_minutes_other = 120     # TYPEIN 3/4 (referral, EMS) with visit_end = "estimate"
    missing_time = "omit_time"    # omit_time | default_time
    default_time = "08:30"        # for missing_time = "default_time"
    lab_time = "visit_start"      # visit_start | date
    card_dates = "card"           # card | omit
    missing_cid = "skip"          # skip (the only safe choice: PHR keys everything on the CID)
    ipd_ref_prefix = ""           # Encounter ref of an admission = HCODE:<prefix><AN>
    implausible_vitals = "drop"   # drop | send (send: the validator refuses the whole encounter)
    unmapped_drug = "local"       # local | skip: a drug with no TMT code (docs/codes.md)

Whatever a policy fills in that the source did not say is recorded as a data-quality note on that
encounter (see :mod:`phrsync.phr.mapping`), so the report shows how much of a payload is estimated.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, fields
from typing import Any

VISIT_END = ("omit", "estimate", "last_update")
MISSING_TIME = ("omit_time", "default_time")
LAB_TIME = ("visit_start", "date")
CARD_DATES = ("card", "omit")
MISSING_CID = ("skip",)
IMPLAUSIBLE_VITALS = ("drop", "send")
UNMAPPED_DRUG = ("local", "skip")


class PolicyError(ValueError):
    """A [policies] value that phrsync does not understand (message Thai / English)."""


@dataclass(frozen=True)
class Policies:
    visit_end: str = "omit"
    visit_minutes_opd: int = 60
    visit_minutes_other: int = 120
    missing_time: str = "omit_time"
    default_time: str = "08:30"
    lab_time: str = "visit_start"
    card_dates: str = "card"
    missing_cid: str = "skip"
    ipd_ref_prefix: str = ""
    implausible_vitals: str = "drop"
    unmapped_drug: str = "local"

    def __post_init__(self) -> None:
        for name, allowed in (("visit_end", VISIT_END), ("missing_time", MISSING_TIME),
                              ("lab_time", LAB_TIME), ("card_dates", CARD_DATES), ("missing_cid", MISSING_CID),
                              ("implausible_vitals", IMPLAUSIBLE_VITALS), ("unmapped_drug", UNMAPPED_DRUG)):
            v = getattr(self, name)
            if v not in allowed:
                raise PolicyError(f"ค่า policies.{name} = {v!r} ไม่ถูกต้อง (ใช้ได้: {', '.join(allowed)}) / "
                                  f"invalid policies.{name} = {v!r} (allowed: {', '.join(allowed)})")
        for name in ("visit_minutes_opd", "visit_minutes_other"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 24 * 60:
                raise PolicyError(f"policies.{name} ต้องเป็นจำนวนนาที 1–1440 / policies.{name} must be 1–1440 minutes")
        self.default_time_value()

    def default_time_value(self) -> dt.time:
        """``default_time`` parsed; raises PolicyError when it is not HH:MM."""
        try:
            hh, mm = self.default_time.split(":")
            return dt.time(int(hh), int(mm))
        except (ValueError, AttributeError) as e:
            raise PolicyError(f"policies.default_time ต้องเป็น HH:MM ได้ {self.default_time!r} / "
                              f"policies.default_time must be HH:MM, got {self.default_time!r}") from e

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, raw: dict[str, Any] | None) -> Policies:
        """From a ``[policies]`` table; unknown keys are an error so a typo cannot silently do nothing."""
        raw = dict(raw or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise PolicyError(f"ไม่รู้จัก policies: {', '.join(unknown)} / unknown policies: {', '.join(unknown)} "
                              f"(known: {', '.join(sorted(known))})")
        return cls(**raw)


def from_config(config: Any) -> Policies:
    """The policies of a :class:`phrsync.config.Config` (defaults when there is no [policies] table)."""
    section = config.section("policies") if config is not None else {}
    return Policies.from_mapping(section)
