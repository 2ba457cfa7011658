"""The charts' data as Apache ECharts options, built here and served as JSON (``/api/chart/...``): a page's
``<div data-chart="/api/chart/...">`` is drawn by ``static/app.js`` with ``echarts.init(div).setOption(json)``.
Building the option on the server keeps the figures testable without a browser and the labels in the page's
language. A day the model does not know is ``null`` (a gap in the line or bar), never 0. Each endpoint answers
``{"option": <ECharts option>, "days": [ISO dates]}`` (or ``"categories"``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from phrsync.thai import be_date
from phrsync.web import model
from phrsync.web.render import t, year_month

# the four series of a day, in the order the pages explain them, with fixed colours so each reads the same
SERIES = {
    "his": (("ใน HIS", "in the HIS"), "#7a8ea6"),
    "built": (("สร้างแล้ว", "built"), "#c9a227"),
    "confirmed": (("PHR ยืนยันแล้ว", "confirmed by PHR"), "#2e8b57"),
    "phr": (("PHR มีอยู่", "held by PHR"), "#1f5fa8"),
}


def _base(lang: str, title: str) -> dict[str, Any]:
    return {
        "animation": False,
        "title": {"text": title, "left": "left", "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 24},
        "grid": {"left": 56, "right": 24, "top": 64, "bottom": 72},
        "toolbox": {"feature": {"saveAsImage": {"title": t(lang, "บันทึกภาพ", "save image")}}},
    }


def every_day(points: Sequence[model.DayPoint]) -> list[model.DayPoint]:
    """``points`` with the days between them that have none (as unknown: no bar, no point), so the x axis is
    time as a calendar reads it and a month without data shows as a gap, not as nothing."""
    if not points:
        return []
    have = {p.day: p for p in points}
    first, last = min(have), max(have)
    return [have.get(first + dt.timedelta(days=i), model.DayPoint(first + dt.timedelta(days=i)))
            for i in range((last - first).days + 1)]


def daily(points: Sequence[model.DayPoint], lang: str, series: Sequence[str], title: str,
          kind: str = "line", zoom_days: int | None = None) -> dict[str, Any]:
    """Days on the x axis (Buddhist-era labels), one series per key of ``series`` (``his``, ``built``,
    ``confirmed``, ``phr``). ``zoom_days``: a slider showing the last that many days first (months of bars)."""
    opt = _base(lang, title)
    opt["xAxis"] = {"type": "category", "data": [be_date(p.day, lang) for p in points],
                    "axisLabel": {"hideOverlap": True}}
    opt["yAxis"] = {"type": "value", "minInterval": 1}
    opt["series"] = []
    for key in series:
        (th, en), colour = SERIES[key]
        opt["series"].append({"name": t(lang, th, en), "type": kind, "data": [getattr(p, key) for p in points],
                              "itemStyle": {"color": colour}, "lineStyle": {"color": colour},
                              "connectNulls": False, "showSymbol": False, "id": key, "barMaxWidth": 14})
    if zoom_days and len(points) > zoom_days:
        start = 100.0 * (len(points) - zoom_days) / len(points)
        opt["dataZoom"] = [{"type": "slider", "start": round(start, 2), "end": 100}, {"type": "inside"}]
    return opt


def districts(rows: Sequence[model.DistrictRow], lang: str, month: str) -> dict[str, Any]:
    """This month's encounters in the HIS and held by PHR, per district (bars side by side)."""
    shown = year_month(month, lang)  # "2026-12" → ธ.ค. 2569: the title is read, the ISO month is the model's
    opt = _base(lang, t(lang, f"รายอำเภอ เดือน {shown}", f"by district, {shown}"))
    names = [(t(lang, r.name, r.name_en) or r.name) for r in rows]
    opt["xAxis"] = {"type": "category", "data": names, "axisLabel": {"interval": 0, "rotate": 30}}
    opt["yAxis"] = {"type": "value", "minInterval": 1}
    opt["series"] = [
        {"name": t(lang, *SERIES["his"][0]), "type": "bar", "data": [r.his_month for r in rows],
         "itemStyle": {"color": SERIES["his"][1]}, "id": "his"},
        {"name": t(lang, *SERIES["phr"][0]), "type": "bar", "data": [r.phr_month for r in rows],
         "itemStyle": {"color": SERIES["phr"][1]}, "id": "phr"},
    ]
    return opt


def did_trend(citizens: Sequence[Any], personnel: Sequence[Any], lang: str, target_citizens: float | None,
              target_personnel: float | None, title: str) -> dict[str, Any]:
    """KPI 54.2 (citizens) and 54.1 (personnel) after each check run (:class:`phrsync.did.report.TrendPoint`),
    the x axis the runs' Buddhist-era dates; a run without a figure of one kind is a gap, never 0."""
    from phrsync.thai import be_datetime

    times = sorted({p.taken_at for p in [*citizens, *personnel]})
    opt = _base(lang, title)
    opt["xAxis"] = {"type": "category", "data": [be_datetime(x, lang) for x in times],
                    "axisLabel": {"hideOverlap": True}}
    opt["yAxis"] = {"type": "value", "min": 0, "max": 100, "axisLabel": {"formatter": "{value} %"}}
    opt["series"] = []
    for key, pts, (th, en), colour, target in (
            ("citizens", citizens, ("ประชาชน (54.2)", "citizens (54.2)"), "#1f5fa8", target_citizens),
            ("personnel", personnel, ("บุคลากร (54.1)", "personnel (54.1)"), "#2e8b57", target_personnel)):
        by = {p.taken_at: p.pct for p in pts}
        s: dict[str, Any] = {"name": t(lang, th, en), "type": "line", "id": key, "connectNulls": False,
                             "data": [by.get(x) for x in times], "itemStyle": {"color": colour},
                             "lineStyle": {"color": colour}}
        if target is not None:
            s["markLine"] = {"symbol": "none", "silent": True, "data": [{"yAxis": target, "name": t(
                lang, f"เป้า {th} {target:g} %", f"target {en} {target:g} %")}], "lineStyle": {"type": "dashed"}}
        opt["series"].append(s)
    return opt
