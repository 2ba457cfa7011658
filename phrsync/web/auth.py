"""Who may see what: accounts in the state store (argon2 hashes), sessions, CSRF, roles, login rate limit and
the audit log. Enforced on the server for every page, export and action (a dependency of each route), never
by hiding links."""

from __future__ import annotations

from dataclasses import dataclass

ADMIN, DISTRICT, FACILITY = "admin", "district", "facility"
ROLES = (ADMIN, DISTRICT, FACILITY)
ROLE_TEXT = {ADMIN: ("ผู้ดูแลระดับจังหวัด", "province admin"), DISTRICT: ("ผู้ดูระดับอำเภอ", "district viewer"),
             FACILITY: ("เจ้าหน้าที่หน่วยบริการ", "facility staff")}


@dataclass(frozen=True)
class User:
    username: str
    role: str  # ROLES
    district: str | None = None  # DOPA ampur code, for DISTRICT
    facility: str | None = None  # hospcode, for FACILITY

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def can_see(self, hospcode: str, district_code: str | None) -> bool:
        """May this user see the facility ``hospcode`` (in district ``district_code``)?"""
        if self.role == ADMIN:
            return True
        if self.role == DISTRICT:
            return district_code is not None and district_code == self.district
        return hospcode == self.facility
