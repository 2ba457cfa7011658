"""The agent's runs (``/runs``): start, end, target, sent, confirmed, refused, retries, errors of each, and
whether the scheduler (``phrsync run``) is alive — its lease, the last round, when the next is due and whether it
is late. Facility staff see the runs that touched their facility, a district viewer those of the district."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from phrsync.web import scope
from phrsync.web.views.common import CurrentUser, page, sources

router = APIRouter()


@router.get("/runs")
def runs_page(request: Request, user: CurrentUser) -> Response:
    runs, sched = scope.runs_for(sources(request), user)
    return page(request, "runs.html", user, "runs", runs=runs, sched=sched)
