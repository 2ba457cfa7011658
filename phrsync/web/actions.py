"""The one action of the site: "ส่งใหม่หลังแก้ไข / send again after fixing" for a facility, which does what
``phrsync retry --refused --facility H`` does (:func:`phrsync.delivery.agent.retry` with the build file, so the
fixed data replaces what PHR refused). It runs in a background thread — a retry can take minutes and a page load
must not — and its state is kept here for the facility page to show ("running", then the result).

When another agent holds the state store's lease (``phrsync run`` is sending), the retry cannot run now: the
facility's refused rows are put back in the queue instead (:meth:`Outbox.requeue_refused`) and the next round
of that agent sends them, after loading the rebuilt file it watches."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phrsync.errors import PhrsyncError
from phrsync.pdpa import mask_text

log = logging.getLogger("phrsync.web")

RUNNING, DONE, REQUEUED, FAILED = "running", "done", "requeued", "failed"
STATE_TEXT = {
    RUNNING: ("กำลังส่งใหม่", "sending again"),
    DONE: ("ส่งใหม่เสร็จแล้ว", "sent again"),
    REQUEUED: ("มีโปรแกรมส่งทำงานอยู่: ใส่คิวไว้ให้รอบถัดไปส่ง", "an agent is running: queued for its next round"),
    FAILED: ("ส่งใหม่ไม่สำเร็จ", "sending again failed"),
}


@dataclass
class Job:
    """One "send again" of one facility, as its page shows it."""

    facility: str
    user: str
    started_at: float
    state: str = RUNNING
    finished_at: float | None = None
    result: dict[str, Any] = field(default_factory=dict)  # attempted, sent, confirmed, refused, failed, exit_code
    requeued: int | None = None
    message: tuple[str, str] | None = None  # (th, en), masked

    def to_dict(self) -> dict[str, Any]:
        return {"facility": self.facility, "user": self.user, "state": self.state, "started_at": self.started_at,
                "finished_at": self.finished_at, "result": self.result, "requeued": self.requeued,
                "message": list(self.message) if self.message else None}


DeliveryFactory = Callable[[], Any]  # () → phrsync.delivery.config.DeliverySettings (read when the action runs)


class SendAgain:
    """Background "send again" jobs, one at a time per facility (pressing twice shows the running one)."""

    def __init__(self, delivery: DeliveryFactory | None, build_file: Path | None) -> None:
        self.delivery = delivery
        self.build_file = build_file
        self._jobs: dict[str, Job] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """False when this site was started without delivery settings (then the button is not offered)."""
        return self.delivery is not None

    def job(self, facility: str) -> Job | None:
        with self._lock:
            return self._jobs.get(facility)

    def start(self, facility: str, user: str, on_done: Callable[[Job], None] | None = None) -> Job:
        """Start the facility's job (or return the one running); ``on_done(job)`` is called when it ends (the
        audit log records the result)."""
        with self._lock:
            job = self._jobs.get(facility)
            if job is not None and job.state == RUNNING:
                return job
            job = Job(facility=facility, user=user, started_at=time.time())
            self._jobs[facility] = job
            th = threading.Thread(target=self._run, args=(job, on_done), name=f"web-send-again-{facility}", daemon=True)
            self._threads[facility] = th
        th.start()
        return job

    def wait(self, facility: str, timeout: float | None = None) -> Job | None:
        """Wait for the facility's job to end (tests, and a server shutting down)."""
        with self._lock:
            th = self._threads.get(facility)
        if th is not None:
            th.join(timeout)
        return self.job(facility)

    def _run(self, job: Job, on_done: Callable[[Job], None] | None) -> None:
        from phrsync.delivery import agent
        from phrsync.delivery.outbox import Outbox

        settings = None
        try:
            if self.delivery is None:
                raise PhrsyncError("ไม่ได้ตั้งค่าการส่ง", "delivery is not configured")
            settings = self.delivery()
            ndjson = self.build_file if self.build_file is not None and self.build_file.is_file() else None
            res = agent.retry(settings, refused=True, ndjson=ndjson, facility=job.facility)
            d = res.as_dict()
            job.result = {k: d.get(k) for k in ("attempted", "sent", "confirmed", "refused", "failed", "exit_code",
                                                "remaining")}
            job.result["outbox"] = d.get("outbox", {}).get(job.facility, {})
            skipped = d.get("skipped", {}).get(job.facility)
            if skipped:
                job.message = (mask_text(str(skipped)), mask_text(str(skipped)))
            job.state = DONE
        except agent.AgentBusy as e:
            box = Outbox(settings.state_url)  # type: ignore[union-attr]  # AgentBusy comes after settings
            try:
                job.requeued = box.requeue_refused(job.facility)
            finally:
                box.close()
            job.message = (f"{e.th} รายการที่ถูกปฏิเสธ {job.requeued:,} รายการจะส่งในรอบถัดไป",
                           f"{e.en or e.th}; its {job.requeued:,} refused payloads go in its next round")
            job.state = REQUEUED
        except PhrsyncError as e:
            job.message = (mask_text(e.th), mask_text(e.en or e.th))
            job.state = FAILED
        except Exception as e:  # a bug or a store that broke mid-run: the page says so, the log has the type
            log.exception("send again %s failed", job.facility)
            job.message = ("เกิดข้อผิดพลาดระหว่างส่งใหม่", f"sending again failed: {type(e).__name__}")
            job.state = FAILED
        finally:
            job.finished_at = time.time()
            if on_done is not None:
                try:
                    on_done(job)
                except Exception:  # the audit store unreachable must not hide the result from the page
                    log.exception("recording the end of send again %s failed", job.facility)

    def summary(self, job: Job) -> str:
        """One line for the audit log."""
        r = job.result
        return (f"facility={job.facility} state={job.state} attempted={r.get('attempted')} "
                f"confirmed={r.get('confirmed')} refused={r.get('refused')} requeued={job.requeued}")
