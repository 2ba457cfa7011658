"""Managing a sandbox's storage without running it: accounts, 1-year facility tokens, the IdP register, stored
totals.

The typed functions under ``phrsync sandbox add-user|issue-token|seed-register|stats`` (and the demo): each opens the
storage named by the settings, does one thing and returns a result with ``to_dict()`` for ``--json``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from phrsync.sandbox import auth, dashboard, ekyc
from phrsync.sandbox.settings import SandboxConfig
from phrsync.sandbox.store import Store
from phrsync.thai import local_time, thai_date


@contextlib.contextmanager
def open_store(cfg: SandboxConfig) -> Iterator[Store]:
    """The sandbox's storage, closed on exit."""
    st = Store(cfg.url, cfg.commit_batch_max, cfg.sqlite_synchronous)
    try:
        yield st
    finally:
        st.close()


@dataclass(frozen=True)
class UserSaved:
    """An account created or reset (the password is never part of the result)."""

    user: str
    hospital_code: str
    permissions: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        return f"เพิ่มผู้ใช้ {self.user} ของหน่วยบริการ {self.hospital_code} แล้ว / user {self.user} " \
               f"({self.hospital_code}) saved"


def add_user(cfg: SandboxConfig, user: str, hospital_code: str, password: str,
             permissions: tuple[str, ...] = ()) -> UserSaved:
    """Create or reset ``user`` of ``hospital_code``; default permissions MOPH_PHR_HIE and MOPH_IDP_API.
    A malformed facility code, user name or an empty password is a :class:`~phrsync.errors.UsageError`."""
    perms = tuple(permissions) or auth.DEFAULT_PERMISSIONS
    with open_store(cfg) as st:
        auth.add_user(st, cfg, user, hospital_code, password, perms)
    return UserSaved(user, hospital_code, list(perms))


@dataclass(frozen=True)
class FacilityToken:
    """A new 1-year ``HCODE:TOKEN`` (shown once: only its digest is stored)."""

    hospital_code: str
    token: str = field(repr=False)
    expires_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"hospital_code": self.hospital_code, "token": self.token,
                "expires": local_time(self.expires_at).date().isoformat()}

    def text(self) -> str:
        day = local_time(self.expires_at).date()
        return f"{self.token}\n(แสดงครั้งเดียว ใช้ได้ถึง {thai_date(day)} เฉพาะ UpdatePHRv1 / shown once, valid until " \
               f"{day.isoformat()}, UpdatePHRv1 only)"


def issue_token(cfg: SandboxConfig, hospital_code: str) -> FacilityToken:
    """Issue the facility's 1-year upload token, revoking the previous one."""
    with open_store(cfg) as st:
        token, exp = auth.issue_facility_token(st, cfg, hospital_code)
    return FacilityToken(hospital_code, token, exp)


def seed_register(cfg: SandboxConfig, path: str, personnel: bool = False) -> ekyc.Seeded:
    """Seed the IdP register (:mod:`phrsync.sandbox.ekyc`) from a population (or, ``personnel``, a personnel)
    extract in the formats ``did import-population``/``import-personnel`` accept: CID and a facility or district
    per row. Every row with a usable CID and district is registered, employment type notwithstanding (a
    contracted worker has a Digital ID or not like anyone else); bad rows are skipped."""
    from phrsync.did.population import read_people

    kind = ekyc.PERSONNEL if personnel else ekyc.CITIZEN
    rows, res = read_people(path, kind, [])
    with open_store(cfg) as st:
        seeded = ekyc.seed_register(st, cfg, kind, ((p.cid, p.district) for p in rows))
    seeded.skipped += len(res.problems)
    seeded.duplicates += res.duplicates
    return seeded


@dataclass(frozen=True)
class SandboxStats:
    """What the storage holds, as the dashboard shows it (``figures`` is :func:`dashboard.collect`'s)."""

    figures: dict[str, Any]

    @property
    def bytes_per_encounter(self) -> float:
        n = self.figures["encounters"]
        return round(self.figures["stored_bytes"] / n, 1) if n else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**self.figures, "bytes_per_encounter": self.bytes_per_encounter}

    def text(self) -> str:
        f = self.figures
        return f"บุคคล / persons: {f['persons']:,}  การรับบริการ / encounters: {f['encounters']:,}  " \
               f"หน่วยบริการ / facilities: {f['facilities']:,}\nพื้นที่ / stored: " \
               f"{f['stored_bytes']:,} B ({self.bytes_per_encounter:,.0f} B/encounter)"


def stats(cfg: SandboxConfig) -> SandboxStats:
    """Stored totals per region and province, from the storage alone (no server needed)."""
    with open_store(cfg) as st:
        return SandboxStats(st.read(lambda c: dashboard.collect(c, st.sqlite_file)))
