"""What a user may see, applied to the read model on the server: every page, export, chart and action goes
through here (hiding a link is never the check). A province admin sees everything, a district viewer the
facilities of their district, facility staff their own facility; anything else is 403, including a URL typed
by hand."""

from __future__ import annotations

from collections.abc import Iterable

from phrsync.web import model
from phrsync.web.auth import User, require_facility


def facility_info(src: model.Sources, user: User, hospcode: str) -> model.FacilityInfo:
    """The facility ``hospcode`` if ``user`` may see it (:class:`Forbidden` otherwise, before anything about it
    is read, so a 403 says nothing about whether the code exists)."""
    info = model.directory(src).get(hospcode)
    require_facility(user, hospcode, info.district_code if info else None)
    if info is None:
        info = model.FacilityInfo(hospcode)
    return info


def visible(user: User, rows: Iterable[model.FacilityRow]) -> list[model.FacilityRow]:
    return [r for r in rows if user.can_see(r.info.hospcode, r.info.district_code)]


def visible_codes(src: model.Sources, user: User) -> set[str] | None:
    """The facility codes ``user`` may see; None: all (an admin)."""
    if user.is_admin:
        return None
    return {h for h, i in model.directory(src).items() if user.can_see(h, i.district_code)}


def runs_for(src: model.Sources, user: User, limit: int = 100) -> tuple[list[model.RunRow], model.Scheduler]:
    """The runs ``user`` may see: all for an admin, a facility's own for its staff, those that touched a
    facility of the district for a district viewer (a run that recorded no facilities is the province's)."""
    if user.is_admin:
        return model.runs(src, limit=limit)
    if user.facility and user.role == "facility":
        return model.runs(src, limit=limit, facility=user.facility)
    codes = visible_codes(src, user) or set()
    runs, sched = model.runs(src, limit=limit * 4)
    return [r for r in runs if codes & set(r.facilities)][:limit], sched
