"""What a user may see, applied to the read model on the server: every page, export, chart and action goes
through here (hiding a link is never the check). A province admin sees everything, a district viewer the
facilities of their district, facility staff their own facility; anything else is 403, including a URL typed
by hand. The Digital ID table narrows the same way (:func:`did_rows`)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

from phrsync.web import model
from phrsync.web.auth import DISTRICT, User, require_facility


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


_CODE = re.compile(r"(?<![0-9])[0-9]{5}(?![0-9])")


def _own_errors(run: model.RunRow, codes: set[str]) -> model.RunRow:
    """A run as a non-admin sees it: only the errors that name none of the facilities they may not see (a
    run's errors are the province's, one line per facility)."""
    errors = [e for e in run.errors if set(_CODE.findall(e)) <= codes]
    return dataclasses.replace(run, errors=errors, facilities=[h for h in run.facilities if h in codes])


def runs_seen(src: model.Sources, user: User, runs: list[model.RunRow]) -> list[model.RunRow]:
    """``runs`` (a facility page's) as ``user`` may see them."""
    if user.is_admin:
        return runs
    codes = visible_codes(src, user) or set()
    return [_own_errors(r, codes) for r in runs]


def runs_for(src: model.Sources, user: User, limit: int = 100) -> tuple[list[model.RunRow], model.Scheduler]:
    """The runs ``user`` may see: all for an admin, a facility's own for its staff, those that touched a
    facility of the district for a district viewer — without the other facilities' errors."""
    if user.is_admin:
        return model.runs(src, limit=limit)
    codes = visible_codes(src, user) or set()
    if user.role == "facility" and user.facility:
        runs, sched = model.runs(src, limit=limit, facility=user.facility)
    else:
        runs, sched = model.runs(src, limit=limit * 4)
        runs = [r for r in runs if codes & set(r.facilities)][:limit]
    return [_own_errors(r, codes) for r in runs], sched


DID_TOTAL_FOR_DISTRICT = ("รวมทั้งจังหวัด (ทุกอำเภอ ไม่ใช่เฉพาะอำเภอของท่าน)",
                          "province total (all districts, not only yours)")


def did_rows(user: User, rows: list[Any]) -> list[Any]:
    """The KPI 54 district table (:class:`phrsync.did.kpi.Row`) as ``user`` sees it: a district viewer their
    district's row and the province total, labelled as the whole province's (the figure a district is compared
    with); everyone else every row."""
    if user.role != DISTRICT:
        return rows
    out = [r for r in rows if not r.total and r.code is not None and r.code == user.district]
    out += [dataclasses.replace(r, name=DID_TOTAL_FOR_DISTRICT[0], name_en=DID_TOTAL_FOR_DISTRICT[1])
            for r in rows if r.total]
    return out
