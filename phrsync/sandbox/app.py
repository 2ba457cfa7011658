"""The sandbox HTTP API: MOPH-PHR upload, utility and read routes with the spec's paths and parameters.

Built as :class:`Sandbox` (settings + storage + fault plan) whose ``asgi`` attribute is what uvicorn or a
test client serves. Every answer carries the §5.2 envelope; the order of checks on uploads is
401/403 token → 413 size → 400 bytes/JSON → 403 facility → 429 rate → 400 content → store."""

from __future__ import annotations

import collections
import csv
import datetime
import inspect
import logging
import math
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from phrsync import __version__
from phrsync.sandbox import auth, codec, dashboard, payloads, readside, store
from phrsync.sandbox.envelope import ApiError, envelope, error_response, iso_utc
from phrsync.sandbox.faults import FaultMiddleware, FaultPlan
from phrsync.sandbox.payloads import Bad, issue
from phrsync.sandbox.settings import SandboxConfig

log = logging.getLogger("phrsync.sandbox")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH_RE = re.compile(r"^\d{4}-\d{2}$")


def _real_date(text: str | None, pattern: re.Pattern[str], suffix: str = "") -> bool:
    """The shape and a day that exists: 2025-13-01 or 2025-02-30 would otherwise read as 'PHR holds
    nothing that day', and an agent walking the calendar would resend (or never notice) its bug."""
    if not text or not pattern.match(text):
        return False
    try:
        datetime.date.fromisoformat(text + suffix)
    except ValueError:
        return False
    return True


_JSON_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}
_JSON_ARRAY_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "string"}}]}}}}}
WEBAPP_ACTIONS = {"PatientSummary", "Address", "Telecom", "Coverage", "Encounter", "VitalSign", "Condition",
                  "Appointment", "Observation", "DiagnosticReport", "Medication", "ProfileImage", "Immunization",
                  "Allergy", "NCD", "Referral", "SelfObservation", "CareGiver", "Pregnancy", "ReportEncounter",
                  "ValidateOTP", "RequestOTP"}


class _BuiltinValidator:
    """Used only when phrsync.phr.validate is absent: byte-level checks, content left to storage checks."""

    @staticmethod
    def validate_json_bytes(endpoint: str, body: bytes) -> list[dict[str, Any]]:
        if body.startswith(b"\xef\xbb\xbf"):
            return [issue("$", "json_bom", "ข้อมูลขึ้นต้นด้วย BOM", "body starts with a BOM")]
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return [issue("$", "json_utf8", "ข้อมูลไม่ใช่ UTF-8", "body is not valid UTF-8")]
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError:
            return [issue("$", "json_syntax", "รูปแบบ JSON ไม่ถูกต้อง", "body is not valid JSON")]
        return []

    @staticmethod
    def validate(endpoint: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        return []


def _loads(body: bytes) -> Any:
    """JSON of a non-upload body (chronic removal list, utility objects); a leading BOM is named as such,
    as the upload validator does, rather than reported as unreadable JSON."""
    if body.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        raise Bad([issue("$", "json_bom", "ข้อมูลขึ้นต้นด้วย BOM: ลบ BOM ออกและส่งเป็น UTF-8",
                         "body starts with a byte-order mark (BOM): remove it and send UTF-8")])
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise Bad([issue("$", "json_syntax", "รูปแบบ JSON ไม่ถูกต้อง", "body is not valid JSON")]) from e


class RateLimiter:
    """Sliding one-minute window of uploads per facility (project default §7.2: 120/min)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def check(self, hcode: str, now: float) -> float:
        """0 when allowed (and counted), else seconds until a slot frees."""
        if self.per_minute <= 0:
            return 0.0
        with self._lock:
            q = self._hits[hcode]
            while q and q[0] <= now - 60:
                q.popleft()
            if len(q) >= self.per_minute:
                return max(0.1, q[0] + 60 - now)
            q.append(now)
            return 0.0


class Sandbox:
    """One server instance: settings, storage, validator, fault plan and the ASGI app."""

    def __init__(self, cfg: SandboxConfig, validator: Any | None = None) -> None:
        self.cfg = cfg
        Path(cfg.data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)  # holds CIDs (PDPA)
        self.store = store.Store(cfg.url, cfg.commit_batch_max, cfg.sqlite_synchronous, cfg.commit_delay_ms / 1000)
        self._validator = validator
        self.rate = RateLimiter(cfg.rate_limit_per_minute)
        self.plan = FaultPlan(cfg.faults) if cfg.faults.active else None
        self.api = build_api(self)
        self.asgi = FaultMiddleware(FastPath(self.api), self.plan, access_log=cfg.access_log)

    @property
    def validator(self) -> Any:
        if self._validator is None:
            try:
                self._validator = payloads.load_validator()
            except ModuleNotFoundError as e:
                if e.name != "phrsync.phr.validate":
                    raise
                log.warning("phrsync.phr.validate not found: only byte-level checks are applied")
                self._validator = _BuiltinValidator()
        return self._validator

    @property
    def db_file(self) -> Path | None:
        u = self.cfg.url
        return Path(u.removeprefix("sqlite:///")) if u.startswith("sqlite:///") else None

    def close(self) -> None:
        self.store.close()

    async def write(self, fn: Any) -> Any:
        return await self.store.submit_async(fn)


def _load_codes() -> list[dict[str, str]]:
    with (dashboard._DATA / "phr_codingsystems.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _system_name(row: dict[str, str]) -> str:
    s = row["system"]
    return s.split("System=", 1)[1] if "System=" in s else row["name"]


def build_api(sbx: Sandbox) -> FastAPI:
    cfg = sbx.cfg
    extra: dict[str, Any] = {}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        # newer FastAPI checks OpenTelemetry providers on every request; a local test server has none
        extra["telemetry"] = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    app = FastAPI(title="phrsync MOPH-PHR sandbox", version=__version__,
                  description="เซิร์ฟเวอร์ทดสอบที่ทำงานเหมือน MOPH-PHR / local MOPH-PHR-compatible test server", **extra)
    app.state.endpoint_ip = cfg.endpoint_ip
    app.state.endpoint_port = cfg.endpoint_port

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(request, exc)

    @app.exception_handler(Bad)
    async def _bad(request: Request, exc: Bad) -> Response:
        return error_response(request, ApiError(400, f"invalid payload ({len(exc.issues)} error(s))",
                                                "ข้อมูลไม่ถูกต้อง", issues=exc.issues))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        msg, msg_th = {404: ("not found", "ไม่พบเส้นทางนี้"),
                       405: ("method not allowed", "ใช้ HTTP method นี้กับเส้นทางนี้ไม่ได้")}.get(
            exc.status_code, (str(exc.detail), "คำขอไม่ถูกต้อง"))
        return error_response(request, ApiError(exc.status_code, msg, msg_th, headers=dict(exc.headers or {})))

    @app.exception_handler(RequestValidationError)
    async def _reqval(request: Request, exc: RequestValidationError) -> Response:
        issues = [issue(".".join(str(x) for x in e.get("loc", ())), "request", "พารามิเตอร์ไม่ถูกต้อง",
                        str(e.get("msg", ""))) for e in exc.errors()]
        return error_response(request, ApiError(400, "invalid request parameters", "พารามิเตอร์ไม่ถูกต้อง",
                                                issues=issues))

    @app.exception_handler(Exception)
    async def _boom(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, ClientDisconnect):
            log.exception("unexpected error on %s", request.url.path)
        return error_response(request, ApiError(500, "internal server error", "เซิร์ฟเวอร์ขัดข้อง"))

    # ---- helpers ----------------------------------------------------------------------------
    def _auth(request: Request, *, facility_ok: bool = False, need: str = auth.PERM_UPLOAD) -> auth.Principal:
        return auth.authenticate(sbx.store, cfg, request.headers.get("authorization"),
                                 allow_facility_token=facility_ok, need=need)

    async def _body(request: Request) -> bytes:
        cl = request.headers.get("content-length")
        if cl and cl.isdigit() and int(cl) > cfg.max_body_bytes:
            raise ApiError(413, "payload too large", "ข้อมูลใหญ่เกินกำหนด")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cfg.max_body_bytes:
                raise ApiError(413, "payload too large", "ข้อมูลใหญ่เกินกำหนด")
            chunks.append(chunk)
        return b"".join(chunks)

    def _parse_and_validate(endpoint: str, body: bytes) -> tuple[Any, list[Any]]:
        """One pass when the validator offers parse_and_validate; else bytes check, parse, then validate."""
        v = sbx.validator
        if hasattr(v, "parse_and_validate"):
            return v.parse_and_validate(endpoint, body)  # type: ignore[no-any-return]
        found = list(v.validate_json_bytes(endpoint, body))
        if any(payloads.issue_dict(i)["severity"] == "error" for i in found):
            return None, found
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None, [*found, issue("$", "json_syntax", "รูปแบบ JSON ไม่ถูกต้อง", "body is not valid JSON")]
        seen = {(payloads.issue_dict(i)["path"], payloads.issue_dict(i)["rule"]) for i in found}
        extra = [i for i in v.validate(endpoint, payload)
                 if (payloads.issue_dict(i)["path"], payloads.issue_dict(i)["rule"]) not in seen]
        return payload, [*found, *extra]

    def _errors(found: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        ds = [payloads.issue_dict(i) for i in found]
        return [d for d in ds if d["severity"] == "error"], [d for d in ds if d["severity"] != "error"]

    async def _upload(request: Request, endpoint: str, facility_ok: bool = False, has_org: bool = True
                      ) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        p = _auth(request, facility_ok=facility_ok)
        body = await _body(request)
        payload, found = _parse_and_validate(endpoint, body)
        errs, warns = _errors(found)
        if payload is None or not isinstance(payload, dict):
            if not errs:
                errs = [issue("$", "payload_object", "ข้อมูลต้องเป็นออบเจ็กต์ JSON", "payload must be a JSON object")]
            raise Bad(errs)
        try:
            hcode = payloads.org_hcode(payload) if has_org else p.hospital_code  # SelfObservation: the token's
        except Bad:
            hcode = ""
        if auth.valid_hcode(hcode):
            auth.same_facility(p, hcode)  # 403 before content errors: another facility's data is not examined
            wait = sbx.rate.check(hcode, cfg.clock())
            if wait:
                raise ApiError(429, "rate limit exceeded", "ส่งข้อมูลถี่เกินกำหนด",
                               headers={"Retry-After": str(math.ceil(wait))})
        if errs:
            raise Bad(errs)
        if not auth.valid_hcode(hcode):
            raise Bad([issue("managingOrganization.identifier.value", "hcode", "รหัสหน่วยบริการต้องเป็นตัวเลข 5 หลัก",
                             "facility code must be 5 digits")])
        return hcode, payload, warns

    async def _store(request: Request, payload: dict[str, Any], hcode: str, warns: list[dict[str, Any]],
                     write: Callable[[Any, float], int], cid: str | None = None) -> Response:
        """One write transaction for an accepted upload: the facility's name/agent/last-seen, the
        person (registers that carry a Patient), then the endpoint's own rows."""
        name, agent, now = payloads.org_name(payload), payloads.org_agent(payload), cfg.clock()
        person = codec.pack(payload.get("Patient")) if cid is not None else None

        def job(conn: Any) -> int:
            store.touch_facility(conn, hcode, name, agent, now)
            if cid is not None:
                store.put_person(conn, cid, hcode, person, now)
            return write(conn, now)

        return _accepted(request, await sbx.write(job), warns)

    def _accepted(request: Request, n: int, warns: list[dict[str, Any]]) -> Response:
        pw = [f"{w['path']}: {w['message_th']} / {w['message_en']}" for w in warns]
        return envelope(request, {"received": n}, extra={"processing_warning": pw})

    # ---- Account Center imitation -----------------------------------------------------------
    @app.get("/token", response_class=PlainTextResponse, tags=["auth"], operation_id="token_get",
             summary="MOPH Account Center: get_moph_access_token (query parameters)")
    @app.post("/token", response_class=PlainTextResponse, tags=["auth"], operation_id="token_post",
              summary="MOPH Account Center: get_moph_access_token (returns the raw JWT text)")
    async def token(request: Request, Action: str = Query(...), user: str | None = None,  # noqa: N803
                    password_hash: str | None = None, hospital_code: str | None = None) -> Response:
        if Action != "get_moph_access_token":
            raise ApiError(404, "unknown Action", "ไม่รู้จัก Action")
        fields = {"user": user, "password_hash": password_hash, "hospital_code": hospital_code}
        body = await _body(request)
        if body.strip():
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError as e:
                raise ApiError(400, "body is not valid JSON", "รูปแบบ JSON ไม่ถูกต้อง") from e
            if isinstance(data, dict):
                for k in fields:
                    if isinstance(data.get(k), str):
                        fields[k] = data[k]
        jwt_text = await run_in_threadpool(auth.login, sbx.store, cfg, fields["user"] or "",
                                           fields["password_hash"] or "", fields["hospital_code"] or "")
        return PlainTextResponse(jwt_text)

    # ---- uploads ----------------------------------------------------------------------------
    @app.post("/api/UpdatePHRv1", tags=["upload"], openapi_extra=_JSON_BODY,
              summary="บันทึกข้อมูลสุขภาพรายบุคคล / full personal health record (upsert by encounter ref)")
    async def update_phr(request: Request) -> Response:
        hcode, payload, warns = await _upload(request, "UpdatePHRv1", facility_ok=True)
        cid = payloads.patient_cid(payload)
        encs = payloads.require_list(payload, "Encounter")
        keyed: dict[str, tuple[str, str, str, Any]] = {}
        problems: list[dict[str, Any]] = []
        for i, e in enumerate(encs):
            try:
                k = payloads.encounter_key(hcode, e, i)
            except Bad as b:
                problems.extend(b.issues)
                continue
            keyed[k.ref] = (k.ref, k.day, k.start_utc, e)
        if problems:
            raise Bad(problems)
        replace_all = payloads.is_scope_all(payload)
        allergy = payload.get("AllergyIntolerance")
        allergy_rows = [{"data": codec.pack(a)} for a in allergy] if isinstance(allergy, list) and allergy else None
        name, agent, now = payloads.org_name(payload), payloads.org_agent(payload), cfg.clock()
        write = store.EncounterWrite(hcode, name, agent, cid, payload.get("Patient"), list(keyed.values()), now)
        if not replace_all and allergy_rows is None:  # the common case: bulk-written with its batch
            return _accepted(request, await sbx.write(write), warns)

        def job(conn: Any) -> int:
            if replace_all:
                store.drop_other_encounters(conn, hcode, cid, set(keyed))
            if allergy_rows is not None:
                store.replace_list(conn, store.allergies, hcode, cid, allergy_rows, now)
            return write(conn)

        return _accepted(request, await sbx.write(job), warns)

    async def _person_list(request: Request, endpoint: str, key: str, table: Any, ref_key: str | None) -> Response:
        hcode, payload, warns = await _upload(request, endpoint)
        cid = payloads.patient_cid(payload)
        items = payload.get(key)
        if not isinstance(items, list):
            raise Bad([issue(key, "required", f"ต้องมี {key} เป็นรายการ", f"{key} must be a list")])
        out, problems = [], []
        for i, it in enumerate(items):
            row: dict[str, Any] = {"data": codec.pack(it)}
            if ref_key:
                ref = it.get(ref_key) if isinstance(it, dict) else None
                if not isinstance(ref, str) or not ref.strip():
                    problems.append(issue(f"{key}[{i}].{ref_key}", "required", f"ต้องระบุ {ref_key}",
                                          f"{ref_key} is required"))
                    continue
                row["encounter_ref_code"] = payloads.normalize_ref(hcode, ref)
            out.append(row)
        if problems:
            raise Bad(problems)
        return await _store(request, payload, hcode, warns,
                            lambda conn, now: store.replace_list(conn, table, hcode, cid, out, now), cid=cid)

    @app.post("/api/ImmunizationRegisterv1", tags=["upload"], openapi_extra=_JSON_BODY,
              summary="ทะเบียนวัคซีน (แทนที่ทั้งรายการของบุคคลในหน่วยบริการ) / vaccination register, replace-all")
    async def immunization(request: Request) -> Response:
        return await _person_list(request, "ImmunizationRegisterv1", "Immunization", store.immunizations,
                                  "encounterRefCode")

    @app.post("/api/AllergyIntolerancev1", tags=["upload"], openapi_extra=_JSON_BODY,
              summary="ประวัติแพ้ยา/อาหาร (แทนที่ทั้งรายการ) / allergy list, replace-all per person and facility")
    async def allergy(request: Request) -> Response:
        return await _person_list(request, "AllergyIntolerancev1", "AllergyIntolerance", store.allergies, None)

    @app.post("/api/PatientChronicRegisterv1", tags=["upload"], openapi_extra=_JSON_ARRAY_BODY,
              summary="ทะเบียนโรคเรื้อรัง (upsert ตาม chronic_ref_code; mode=remove ลบ) / chronic registry")
    async def chronic(request: Request, mode: str | None = None, cd_code: str | None = None,
                      hospital_code: str | None = None) -> Response:
        if (mode or "").lower() == "remove":
            p = _auth(request)
            hcode = auth.same_facility(p, hospital_code)
            if not cd_code:
                raise Bad([issue("cd_code", "required", "ต้องระบุ cd_code", "cd_code is required")])
            refs = _loads(await _body(request))
            if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
                raise Bad([issue("$", "type", "ต้องเป็นอาร์เรย์ของ chronic_ref_code",
                                 "body must be a JSON array of chronic_ref_code strings")])
            code, wanted = payloads.clean(cd_code), [payloads.clean(r) for r in refs]
            n = await sbx.write(lambda c: store.remove_chronic(c, hcode, code, wanted))
            return envelope(request, n)
        hcode, payload, warns = await _upload(request, "PatientChronicRegisterv1")
        cid = payloads.patient_cid(payload)
        items = payloads.require_list(payload, "ChronicDiseaseRegister")
        rows, problems = [], []
        for i, it in enumerate(items):
            try:
                ref, cd = payloads.chronic_cd_code(it, i)
            except Bad as b:
                problems.extend(b.issues)
                continue
            rows.append({"chronic_ref_code": ref, "cd_code": cd, "data": codec.pack(it)})
        if problems:
            raise Bad(problems)
        return await _store(request, payload, hcode, warns,
                            lambda conn, now: store.upsert_chronic(conn, hcode, cid, rows, now), cid=cid)

    def _doc_key(endpoint: str, item: Any) -> Any:
        if not isinstance(item, dict):
            return None
        if endpoint == "ReferralRequest":
            return item.get("referralRefCode")
        if endpoint == "DrugRelatedProblem":
            return item.get("drp_ref_code")
        ids = item.get("identifier")  # MedicationRequest: prescription ID; CareGiver: caregiver CID
        return ids[0].get("value") if isinstance(ids, list) and ids and isinstance(ids[0], dict) else None

    async def _documents(request: Request, endpoint: str) -> Response:
        hcode, payload, warns = await _upload(request, endpoint)
        cid = payloads.patient_cid(payload)
        items = payloads.require_list(payload, endpoint)
        rows, problems = [], []
        for i, it in enumerate(items):
            key = _doc_key(endpoint, it)
            if not isinstance(key, str) or not key.strip():
                problems.append(issue(f"{endpoint}[{i}]", "required", "ต้องมีรหัสอ้างอิงของรายการ",
                                      "the item's reference key is required"))
                continue
            rows.append({"ref": payloads.clean(key.strip()), "data": codec.pack(it)})
        if problems:
            raise Bad(problems)
        return await _store(request, payload, hcode, warns,
                            lambda conn, now: store.upsert_documents(conn, endpoint, hcode, cid, rows, now))

    def _doc_route_for(endpoint: str) -> Any:
        # bound by closure, not a default argument: FastAPI would expose a defaulted parameter as a
        # query parameter that a client could set (the schemathesis run found exactly that)
        async def _doc_route(request: Request) -> Response:
            return await _documents(request, endpoint)

        return _doc_route

    for _ep in ("ReferralRequest", "MedicationRequest", "DrugRelatedProblem", "CareGiver"):
        app.add_api_route(f"/api/{_ep}", _doc_route_for(_ep), methods=["POST"], tags=["upload"], openapi_extra=_JSON_BODY,
                          operation_id=f"upload_{_ep}", summary=f"{_ep}: upsert ตามรหัสอ้างอิงของรายการ / by item key")

    @app.post("/api/SelfObservation", tags=["upload"], openapi_extra=_JSON_BODY,
              summary="ผลตรวจวัดด้วยตนเอง (หน่วยบริการ = ของโทเค็น) / home or kiosk measurement")
    async def self_observation(request: Request) -> Response:
        hcode, payload, warns = await _upload(request, "SelfObservation", has_org=False)
        cid = _dig_str(payload, "person", "cid")
        ref = _dig_str(payload, "observation_ref_code")
        if not (len(cid) == 13 and cid.isdigit()) or not ref:
            raise Bad([issue("person.cid", "required", "ต้องมี person.cid และ observation_ref_code",
                             "person.cid and observation_ref_code are required")])
        row = {"ref": payloads.clean(ref), "data": codec.pack(payload)}
        now = cfg.clock()
        n = await sbx.write(lambda c: store.upsert_documents(c, "SelfObservation", hcode, cid, [row], now))
        return _accepted(request, n, warns)

    @app.post("/api/OrgEncounterSummary", tags=["upload"], openapi_extra=_JSON_BODY,
              summary="ยอดการรับบริการรายวันจาก HIS / daily encounter counts (at most one month per call)")
    async def org_summary(request: Request) -> Response:
        hcode, payload, warns = await _upload(request, "OrgEncounterSummary")
        rows = payloads.summary_rows(payload)
        if len({r["day"][:7] for r in rows}) > 1:
            raise Bad([issue("EncounterSummary", "one_month", "ส่งได้ครั้งละไม่เกิน 1 เดือน",
                             "send at most one month per call")])
        return await _store(request, payload, hcode, warns,
                            lambda conn, now: store.put_org_summary(conn, hcode, rows, now))

    # ---- utility ----------------------------------------------------------------------------
    @app.get("/api/OrganizationSummary", tags=["utility"],
             summary="รายการ encounter_ref_code รายวัน / month_summary / patient_chronic_registry")
    async def organization_summary(request: Request, data: str = Query(...), date: str | None = None,
                                   month: str | None = None, hospital_code: str | None = None,
                                   cd_code: str | None = None) -> Response:
        p = _auth(request)
        hcode = auth.same_facility(p, hospital_code)
        if data == "encounter_ref_code":
            if not _real_date(date, _DATE_RE):
                raise Bad([issue("date", "format", "date ต้องเป็นวันที่ที่มีจริง แบบ yyyy-mm-dd",
                                 "date must be a real day as yyyy-mm-dd")])
            res = await run_in_threadpool(sbx.store.read, lambda c: store.refs_for_day(c, hcode, date))
        elif data == "month_summary":
            if not _real_date(month, _MONTH_RE, "-01"):
                raise Bad([issue("month", "format", "month ต้องเป็นเดือนที่มีจริง แบบ yyyy-mm",
                                 "month must be a real month as yyyy-mm")])
            res = await run_in_threadpool(sbx.store.read, lambda c: store.month_counts(c, hcode, month))
        elif data == "patient_chronic_registry":
            cd = payloads.clean(cd_code) if cd_code else None
            res = await run_in_threadpool(sbx.store.read, lambda c: store.chronic_refs(c, hcode, cd))
        else:
            raise Bad([issue("data", "enum", "data ไม่ถูกต้อง",
                             "data must be encounter_ref_code, month_summary or patient_chronic_registry")])
        return envelope(request, res)

    @app.get("/api/RemoveEncounter", tags=["utility"], summary="ลบการรับบริการ 1 รายการ / remove one encounter")
    async def remove_encounter(request: Request, encounter_ref_code: str = Query(...),
                               hospital_code: str | None = None) -> Response:
        p = _auth(request)
        hcode = auth.same_facility(p, hospital_code)
        ref = payloads.normalize_ref(hcode, encounter_ref_code)
        n = await sbx.write(lambda c: store.remove_encounter(c, hcode, ref))
        return envelope(request, n)

    async def _json_obj(request: Request) -> dict[str, Any]:
        body = await _body(request)
        data = _loads(body) if body.strip() else {}
        if not isinstance(data, dict):
            raise Bad([issue("$", "payload_object", "ข้อมูลต้องเป็นออบเจ็กต์ JSON", "payload must be a JSON object")])
        return data

    @app.post("/api/UpdateAgentStatus", tags=["utility"], openapi_extra=_JSON_BODY,
              summary="สถานะโปรแกรมส่งข้อมูล (ห่างกันอย่างน้อย 5 วินาที) / agent heartbeat, mode=Error for errors")
    async def update_agent_status(request: Request, mode: str | None = None) -> Response:
        p = _auth(request)
        data = await _json_obj(request)
        hcode = auth.same_facility(p, str(data.get("hospital_code") or ""))
        fields = {k: payloads.clean(str(v)) for k, v in data.items() if isinstance(v, str | int | float)}
        error = (mode or "").lower() == "error"
        now = cfg.clock()
        try:
            await sbx.write(lambda c: store.record_agent_status(c, hcode, fields, error, now,
                                                                cfg.agent_status_interval))
        except store.TooSoon as e:
            raise ApiError(429, "UpdateAgentStatus allowed at most once every "
                           f"{cfg.agent_status_interval:g} s per facility",
                           "ส่งสถานะถี่เกินไป ต้องเว้นอย่างน้อย 5 วินาที",
                           headers={"Retry-After": str(math.ceil(e.wait))}) from e
        return envelope(request, {"hospital_code": hcode, "mode": "Error" if error else "Status"})

    @app.post("/api/GetAgentComputerName", tags=["utility"], openapi_extra=_JSON_BODY,
              summary="เครื่องที่กำลังส่งข้อมูลของหน่วยบริการ / last reporting agent computer")
    async def get_agent_computer_name(request: Request) -> Response:
        p = _auth(request)
        data = await _json_obj(request)
        hcode = auth.same_facility(p, str(data.get("hospital_code") or ""))
        row = await run_in_threadpool(sbx.store.read, lambda c: c.execute(
            select(store.agent_status).where(store.agent_status.c.hospital_code == hcode)).mappings().first())
        if row is None or not row["computer_name"]:
            return envelope(request, None)
        return envelope(request, {"hospital_code": hcode, "agent_computer_name": row["computer_name"],
                                  "last_update": iso_utc(row["last_update"])})

    @app.post("/idp/api/check_ekyc", tags=["utility"], openapi_extra=_JSON_BODY,
              summary="สถานะยืนยันตัวตน eKYC (ต้องมีสิทธิ์ MOPH_IDP_API) / eKYC status")
    async def check_ekyc(request: Request) -> Response:
        _auth(request, need=auth.PERM_IDP)
        data = await _json_obj(request)
        cid = str(data.get("cid") or "")
        if not (len(cid) == 13 and cid.isdigit()):
            raise Bad([issue("cid", "format", "cid ต้องเป็นตัวเลข 13 หลัก", "cid must be 13 digits")])
        known = await run_in_threadpool(sbx.store.read, lambda c: c.execute(
            select(store.persons.c.cid).where(store.persons.c.cid == cid)).first())
        return envelope(request, 1 if known else 0)

    codes = _load_codes()

    @app.get("/api/CodingSystem", tags=["utility"], summary="รายการรหัสมาตรฐาน / coding systems and codes")
    async def coding_system(request: Request, System: str | None = None) -> Response:  # noqa: N803
        _auth(request)
        if not System:
            seen: dict[str, dict[str, str]] = {}
            for r in codes:
                seen.setdefault(_system_name(r), {"name": _system_name(r), "system": r["system"]})
            return envelope(request, list(seen.values()))
        System = payloads.clean(System)  # noqa: N806
        rows = [{"code": r["code"], "display": r["display"]} for r in codes
                if _system_name(r) == System or r["name"] == System]
        if not rows:
            raise ApiError(404, "unknown System", "ไม่รู้จักระบบรหัสนี้")
        return envelope(request, rows)

    @app.get("/api/WebApp", tags=["read"], operation_id="webapp_get",
             summary="มุมมองของประชาชน (Encounter, PatientSummary, Immunization, NCD, Allergy, Referral, "
                     "SelfObservation, CareGiver) / what the citizen sees")
    @app.post("/api/WebApp", tags=["read"], operation_id="webapp_post",
              summary="มุมมองของประชาชน (cid ในเนื้อความ) / what the citizen sees (cid in the body)")
    async def webapp(request: Request, Action: str = Query(...), cid: str | None = None,  # noqa: N803
                     mode: str | None = None) -> Response:
        _auth(request)
        if request.method == "POST" and not cid:
            cid = str((await _json_obj(request)).get("cid") or "")
        if Action not in WEBAPP_ACTIONS:
            raise ApiError(404, "unknown Action", "ไม่รู้จัก Action")
        if Action not in ("Encounter", "PatientSummary", *readside.LIST_ACTIONS):
            raise ApiError(501, f"Action {Action} is not implemented in the sandbox",
                           "แซนด์บ็อกซ์ยังไม่รองรับ Action นี้")
        if not cid or not (len(cid) == 13 and cid.isdigit()):
            raise Bad([issue("cid", "format", "cid ต้องเป็นตัวเลข 13 หลัก", "cid must be 13 digits")])
        c = cid
        if Action == "Encounter":
            res = await run_in_threadpool(sbx.store.read, lambda conn: readside.encounters_for(conn, c))
        elif Action in readside.LIST_ACTIONS:
            res = await run_in_threadpool(sbx.store.read, lambda conn: readside.items_for(conn, Action, c))
        else:
            now = cfg.clock()
            res = await run_in_threadpool(sbx.store.read, lambda conn: readside.patient_summary(conn, c, now))
        return envelope(request, res)

    # ---- dashboard ----------------------------------------------------------------------------
    @app.get("/dashboard", tags=["dashboard"], response_class=HTMLResponse,
             summary="แดชบอร์ดศูนย์ PHR / PHR-centre dashboard (format=json for data)")
    async def dash(request: Request, format: str | None = None) -> Response:  # noqa: A002
        data = await run_in_threadpool(sbx.store.read, lambda c: dashboard.collect(c, sbx.db_file))
        if format == "json":
            return Response(orjson.dumps(data), media_type="application/json")
        return HTMLResponse(dashboard.render(data, cfg.clock()))

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/dashboard")

    app.state.fast_routes = {("POST", "/api/UpdatePHRv1"): update_phr}
    return app


def _dig_str(obj: Any, *keys: str) -> str:
    for k in keys:
        obj = obj.get(k) if isinstance(obj, dict) else None
    return obj.strip() if isinstance(obj, str) else ""


class FastPath:
    """Serves the hot upload route without FastAPI's per-request machinery (middleware stack, route
    matching, dependency solving), calling the very same endpoint function; everything else falls through.
    Roughly a third of the non-validation cost of an upload is framework overhead."""

    def __init__(self, api: FastAPI) -> None:
        self.api = api
        self.routes: dict[tuple[str, str], Any] = api.state.fast_routes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        endpoint = self.routes.get((scope.get("method", ""), scope.get("path", ""))) \
            if scope["type"] == "http" else None
        if endpoint is None:
            await self.api(scope, receive, send)
            return
        scope["app"] = self.api
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except ApiError as e:
            response = error_response(request, e)
        except Bad as e:
            response = error_response(request, ApiError(400, f"invalid payload ({len(e.issues)} error(s))",
                                                         "ข้อมูลไม่ถูกต้อง", issues=e.issues))
        except ClientDisconnect:
            return  # the client went away mid-request: nobody to answer
        except Exception:
            log.exception("unexpected error on %s", scope.get("path"))
            response = error_response(request, ApiError(500, "internal server error", "เซิร์ฟเวอร์ขัดข้อง"))
        await response(scope, receive, send)
