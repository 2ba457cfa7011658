"""The PHR centre's view of the province (``/phr``): persons, encounters and storage by health region and the
per-facility table as the national PHR Dashboard shows them — from the sandbox's store when testing, from what
the agent learned from PHR in production (:func:`phrsync.web.model.phr_centre`). The region totals are the
province admin's; others see their facilities' rows."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from phrsync.web import model
from phrsync.web.views.common import CurrentUser, page, sources

router = APIRouter()


@router.get("/phr")
def phr_page(request: Request, user: CurrentUser) -> Response:
    centre = model.phr_centre(sources(request))
    rows = [f for f in centre.facilities if user.can_see(f.info.hospcode, f.info.district_code)]
    regions = centre.regions if user.is_admin else []
    return page(request, "phr.html", user, "phr", centre=centre, rows=rows, regions=regions)
