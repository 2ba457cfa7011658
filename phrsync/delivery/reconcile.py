"""Reconcile with what PHR holds (spec Appendix C): per facility and day, ``OrganizationSummary`` lists the
encounter refs PHR has. Rows PHR acknowledged become ``confirmed`` when listed; rows PHR lost are sent again;
refs PHR holds that the HIS no longer has are removed with ``RemoveEncounter``, guarded: never more than
``remove_max_fraction`` of a day's refs without ``force`` (a half-empty export must not wipe a facility).

"The HIS no longer has it" is only decided for days the latest build covered for that facility (its first to
last visit day); outside that window the agent does not know the HIS and removes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from phrsync.delivery import outbox as ob
from phrsync.delivery.auth import AuthError
from phrsync.delivery.sender import GaveUp, Reply, Sender, TargetDown
from phrsync.pdpa import mask_text

log = logging.getLogger("phrsync.delivery")
CONFIRM_BATCH = 20000  # confirmations written per transaction
RECONCILE_PARALLEL = 4  # days asked about at once (per run, bounded by the target's concurrency)


@dataclass
class ReconcileResult:
    days: int = 0
    full: bool = False  # every day of the build window was checked, not only those with news
    confirmed: int = 0
    resend: int = 0  # acknowledged earlier but missing on PHR: pending again
    removed: int = 0
    guarded: list[dict[str, Any]] = field(default_factory=list)  # days whose removals were held back
    errors: list[str] = field(default_factory=list)  # what leaves rows unconfirmed or unremoved (the run exits 3)
    # days of a full check with nothing to confirm or remove whose question failed: the check resumes with them
    # next run; nothing waits on them, so they do not make the run "not delivered"
    deferred: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # facilities not reconciled by design (only the 1-year token)
    # per (facility, day) asked: None = answered, else (why it failed, only a full check's audit day)
    outcome: dict[tuple[str, str], tuple[str, bool] | None] = field(default_factory=dict)

    def failed_days(self) -> set[tuple[str, str]]:
        return {d for d, o in self.outcome.items() if o is not None}

    def as_dict(self) -> dict[str, Any]:
        return {"days": self.days, "full": self.full, "confirmed": self.confirmed, "resend": self.resend,
                "removed": self.removed, "guarded": self.guarded, "errors": self.errors, "deferred": self.deferred,
                "notes": self.notes}


def _full_ref(hcode: str, ref: str) -> str:
    """PHR stores ``HCODE:<ref>``; a ref already starting with the facility code is kept as it is (§7.3)."""
    return ref if ref.startswith(f"{hcode}:") else f"{hcode}:{ref}"


def _envelope(r: Reply) -> dict[str, Any] | None:
    """PHR's answer as an envelope that does not report an error (``MessageCode`` 200 or none); None when it is
    not JSON, not an object, or an error envelope."""
    try:
        data = r.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) and str(data.get("MessageCode", 200)) == "200" else None


def _accepted(r: Reply) -> bool:
    """A 200 whose envelope does not say otherwise."""
    return r.status_code == 200 and _envelope(r) is not None


def _held_refs(r: Reply) -> list[Any] | None:
    """The refs of an OrganizationSummary answer, or None when it is not one: not JSON, an error envelope
    (``MessageCode`` other than 200) or a ``result`` that is not a list. Read as "PHR holds nothing", such an
    answer sent the whole day again and marked rows the build dropped as removed without removing them."""
    data = _envelope(r)
    if data is None:
        return None
    held = data.get("result")
    if held is None:
        return []  # an empty day
    return held if isinstance(held, list) else None


async def reconcile(sender: Sender, facilities: list[str], since: str | None = None, remove: bool = True,
                    force: bool = False, only_unconfirmed: bool = False, full: bool = False, *,
                    full_since: float | None = None,
                    retry_days: set[tuple[str, str]] | None = None) -> ReconcileResult:
    """Compare outbox and PHR day by day. PHR is asked about a day only when the answer can change
    something: it holds rows sent but not yet confirmed, or (inside the build's window) rows the HIS no
    longer has. ``full`` also asks about every other day of the window, which finds what PHR lost or holds
    beyond the HIS on its own (the agent does this every ``full_check_days``), except the days already asked
    about since ``full_since`` (the start of the full check: one that failed part way resumes where it
    stopped); ``only_unconfirmed`` asks about the days holding ``sent`` rows and ``retry_days`` only (days whose
    question failed earlier in the run, removal included). A facility with no day to ask about is not
    contacted at all (no GetAgentComputerName guard either). A day whose question fails does not stop the
    facility's other days."""
    box = sender.box
    res = ReconcileResult()
    retry_days = retry_days or set()
    last = await sender.db(box.last_load)
    scope = last[1] if last else {}
    max_fraction = sender.s.remove_max_fraction
    confirm: list[str] = []  # confirmations are written together, sorted: a day's rows lie all over the table
    answered: set[str] = set()  # facilities PHR answered about a day (what it holds is news for the web)
    checked: list[tuple[str, str, int]] = []  # days answered and the refs PHR holds, recorded with the confirmations

    async def write_confirmed() -> None:
        if checked:
            days = list(checked)
            checked.clear()
            await sender.db(box.mark_days_checked, days)
        if confirm:
            keys = sorted(confirm)
            confirm.clear()
            res.confirmed += await sender.db(box.set_status, keys, ob.CONFIRMED)

    def failed(hcode: str, day: str, why: str, audit: bool) -> None:
        res.outcome[(hcode, day)] = (why, audit)

    async def check_day(hcode: str, day: str, in_window: bool, audit: bool, remove_day: bool) -> None:
        await sender.agent_status(hcode, f"reconciling / ตรวจกับ PHR: {day}")  # a long full check stays visible
        rows = await sender.db(box.day_rows, hcode, day)
        try:
            r = await sender.call("GET", "OrganizationSummary", hcode,
                                  params={"data": "encounter_ref_code", "date": day, "hospital_code": hcode})
        except GaveUp as e:  # this day only: the facility's other days go on
            failed(hcode, day, f"{hcode} {day}: {mask_text(str(e))}", audit)
            return
        if r.status_code != 200:
            failed(hcode, day, f"{hcode} {day}: HTTP {r.status_code}", audit)
            return
        held = _held_refs(r)
        if held is None:  # not a list PHR holds: nothing about the day is known, so nothing is changed
            failed(hcode, day, f"{hcode} {day}: OrganizationSummary ตอบผิดรูปแบบ / unexpected answer: "
                               f"{mask_text(r.text[:120])}", audit)
            return
        server = {str(x) for x in held}
        answered.add(hcode)
        res.days += 1
        res.outcome[(hcode, day)] = None
        checked.append((hcode, day, len(server)))
        resend, gone_rows, current = [], [], set()
        for key, ref, status, missing_load in rows:
            phr_ref = _full_ref(hcode, ref)
            in_his = missing_load is None or not in_window  # outside the build: assume still there
            if status != ob.REMOVED and in_his:
                current.add(phr_ref)
            if status in (ob.SENT, ob.CONFIRMED):
                if phr_ref in server:
                    if status == ob.SENT:
                        confirm.append(key)
                elif in_his:
                    resend.append(key)  # PHR lost it: send again
                else:
                    gone_rows.append(key)  # gone from both (e.g. a removal cut short by a crash)
        if confirm or resend or gone_rows:
            sender.dirty.setdefault(hcode, set()).add(day)
        if len(confirm) >= CONFIRM_BATCH:
            await write_confirmed()
        res.resend += await sender.db(box.set_status, resend, ob.PENDING)
        await sender.db(box.set_status, gone_rows, ob.REMOVED)
        if not remove_day or not in_window:
            return
        gone = sorted(server - current)
        if not gone:
            return
        # a hair over the product: 0.29 * 100 is 28.999999999999996, which held back exactly 29 of 100
        if len(gone) > max_fraction * len(server) + 1e-9 and not force:
            res.guarded.append({"hospcode": hcode, "day": day, "would_remove": len(gone), "held": len(server)})
            log.warning("%s %s: ไม่ลบ %d จาก %d รายการ (เกินสัดส่วนที่กำหนด ใช้ --force) / not removing %d of "
                        "%d refs (over the limit; use --force)", hcode, day, len(gone), len(server),
                        len(gone), len(server))
            return
        removed_keys = []
        by_ref = {_full_ref(hcode, ref): key for key, ref, _status, _missing in rows}
        for ref in gone:
            try:
                rr = await sender.call("GET", "RemoveEncounter", hcode,
                                       params={"hospital_code": hcode, "encounter_ref_code": ref})
            except GaveUp as e:  # this ref only: kept for the next run (the day still holds stale rows)
                res.errors.append(f"{hcode} {day}: RemoveEncounter: {mask_text(str(e))}")
                continue
            if _accepted(rr):  # (result 0 = PHR did not hold it: gone all the same)
                res.removed += 1
                if ref in by_ref:
                    removed_keys.append(by_ref[ref])
            else:
                res.errors.append(f"{hcode} {day}: RemoveEncounter HTTP {rr.status_code}: {mask_text(rr.text[:120])}")
        if removed_keys:
            sender.dirty.setdefault(hcode, set()).add(day)
        await sender.db(box.set_status, removed_keys, ob.REMOVED)

    # a few days at once: each question is one round trip to PHR, and a full check asks about every day
    slots = asyncio.Semaphore(max(1, min(RECONCILE_PARALLEL, sender.t.concurrency)))

    async def bounded(hcode: str, day: str, in_window: bool, audit: bool, remove_day: bool) -> None:
        async with slots:
            await check_day(hcode, day, in_window, audit, remove_day)

    for hcode in facilities:
        if hcode in sender.skipped:
            continue
        if sender.token_only(hcode):
            res.notes.append(f"{hcode}: ไม่ได้ตรวจกับ PHR: โทเค็น 1 ปีเรียก OrganizationSummary ไม่ได้ (ต้องมีบัญชี Account "
                              f"Center) / not reconciled: the 1-year token cannot call OrganizationSummary (it needs an "
                              f"Account Center account)")
            continue
        window = scope.get(hcode)
        flags = await sender.db(box.day_flags, hcode, since)
        done = await sender.db(box.days_checked_since, hcode, full_since) if full and full_since is not None else set()
        asks: list[tuple[str, bool, bool, bool]] = []  # (day, in window, audit only, may remove)
        for day, (has_sent, has_stale) in flags.items():
            in_window = bool(window) and window[0] <= day <= window[1]
            news = in_window and has_stale and remove  # rows the HIS no longer has: removal to decide
            again = (hcode, day) in retry_days
            if only_unconfirmed:
                ask, remove_day = has_sent or again, remove and again
            else:
                ask, remove_day = has_sent or news or (in_window and full and day not in done), remove
            if ask:  # (outside the build the HIS side is unknown: nothing to remove there)
                asks.append((day, in_window, not has_sent and not news, remove_day))
        if not asks or not await sender.facility_ok(hcode):
            continue  # nothing to ask PHR about: no guard, no request
        try:
            async with asyncio.TaskGroup() as tg:
                for day, in_window, audit, remove_day in asks:
                    tg.create_task(bounded(hcode, day, in_window, audit, remove_day))
        except* (AuthError, GaveUp, TargetDown) as eg:
            e = eg.exceptions[0]
            res.errors.append(f"{hcode}: {e}")
            down = [x for x in eg.exceptions if isinstance(x, TargetDown)]
            if down:
                sender.down = str(down[0])
        finally:
            await write_confirmed()
            if hcode in sender.dirty or hcode in answered:  # the web sees what PHR said now, not at the run's end
                await sender.refresh_aggregates({hcode: sender.dirty.get(hcode, set())})
        if sender.down:
            break
    return res
