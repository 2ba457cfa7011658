"""The review list of codes the last build could not map (``/codes/unmapped``), ranked by how many payloads wait
on them, with name-based suggestions from the imported TMT (:func:`phrsync.terminology.review.unmapped`). A
province admin may accept a suggestion (CSRF-checked, audited; :func:`phrsync.terminology.review.accept` writes
the mapping with "reviewed by <user> at <time>" as its source); the next build then uses it. Facility staff see
only their facility's codes, a district viewer its district's."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from phrsync.errors import UsageError
from phrsync.phr.buildfile import read_summary
from phrsync.terminology import review
from phrsync.terminology.codestore import CodeStore
from phrsync.web import auth, scope
from phrsync.web.views.common import AdminUser, CurrentUser, page, sources

router = APIRouter()
HCODE = re.compile(r"^[0-9A-Za-z]{5}$")
CODE = re.compile(r"^[0-9A-Za-z._-]{1,40}$")
LIMIT = 200


def _filters(user: auth.User, facility: str | None) -> str | None:
    """The facility the list is narrowed to: a facility user's own, always; else the one asked for."""
    if user.role == "facility":
        return user.facility or "-"
    if facility and not HCODE.match(facility):
        raise UsageError(f"รหัสหน่วยบริการต้องมี 5 ตัว: {facility[:20]}", f"a facility code has 5 characters: {facility[:20]}")
    return facility or None


@router.get("/codes/unmapped")
def unmapped_page(request: Request, user: CurrentUser, facility: str | None = None, kind: str | None = None,
                  done: str | None = None) -> Response:
    src = sources(request)
    hcode = _filters(user, facility)
    if hcode and hcode != "-":
        scope.facility_info(src, user, hcode)
    if kind not in (None, "", *review.KINDS):
        raise UsageError(f"ไม่รู้จักชนิด {kind[:20]}", f"unknown kind {kind[:20]}", hint=", ".join(review.KINDS))
    summary = read_summary(src.build_file) if src.build_file else None
    has_store = src.code_store is not None and src.code_store.exists()
    rows: list[Any] = []
    if summary is not None:
        if has_store:
            assert src.code_store is not None
            store = CodeStore(src.code_store, create=False)
            try:
                rows = review.unmapped(summary, store, kind=kind or None, hcode=hcode, limit=0)
            finally:
                store.close()
        else:  # no store yet: the list without suggestions (nothing can be mapped before TMT is imported)
            rows = [review.UnmappedRow(str(r.get("kind")), str(r.get("hospcode") or r.get("hcode") or ""),
                                       str(r.get("code")), r.get("name"), int(r.get("payloads") or 0),
                                       int(r.get("waiting") or 0)) for r in summary.unmapped
                    if (not kind or r.get("kind") == kind)
                    and (not hcode or (r.get("hospcode") or r.get("hcode")) == hcode)]
    seen = scope.visible_codes(src, user)
    if seen is not None:
        rows = [r for r in rows if r.hcode in seen]
    total_waiting = sum(r.waiting for r in rows)
    return page(request, "codes_unmapped.html", user, "codes", rows=rows[:LIMIT], total=len(rows),
                total_waiting=total_waiting, has_summary=summary is not None, has_store=has_store,
                facility=hcode if hcode != "-" else None, kind=kind or "", kinds=review.KINDS,
                can_accept=user.is_admin and has_store, done=done)


@router.post("/codes/unmapped/accept", dependencies=[Depends(auth.check_csrf)])
def accept_suggestion(request: Request, user: AdminUser, kind: str = Form(...), hcode: str = Form(...),
                      code: str = Form(...), tmtid: str = Form(...)) -> Response:
    """Write the reviewed mapping (the admin's name and the time are its source), audit it, and go back."""
    src = sources(request)
    if hcode and hcode != "*" and not HCODE.match(hcode):
        raise UsageError(f"รหัสหน่วยบริการต้องมี 5 ตัว: {hcode[:20]}", f"a facility code has 5 characters: {hcode[:20]}")
    if not CODE.match(code) or not CODE.match(tmtid):
        raise UsageError("รหัสไม่ถูกต้อง", "a code is not valid")
    if src.code_store is None or not src.code_store.exists():
        raise UsageError("ยังไม่มีฐานรหัส (phrsync codes import-tmt ก่อน)", "no code store yet (run phrsync codes import-tmt)")
    store = CodeStore(src.code_store, create=False)
    try:
        row = review.accept(store, kind, hcode, code, tmtid, user.username)
    finally:
        store.close()
    auth.audit(request, "code_accept", f"kind={kind} facility={hcode or '*'} code={code} tmtid={row.get('tmtid') or tmtid}")
    q = {"done": f"{kind}:{code}"}
    return RedirectResponse("/codes/unmapped?" + urlencode(q), status_code=303)
