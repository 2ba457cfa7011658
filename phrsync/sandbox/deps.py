"""What the sandbox's routes share: the server instance of a request, the bearer check as FastAPI
dependencies, and reading a request body within the size limit.

Authentication is a dependency, so it runs before the route reads the body: an upload is checked in the
order 401/403 token → 415 Content-Type → 413 size (503 when too many large bodies are in flight) → 400
bytes/JSON → 403 facility → 429 rate → 400 content → store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import Depends, Request

from phrsync.sandbox import auth
from phrsync.sandbox.envelope import ApiError
from phrsync.sandbox.payloads import Bad, issue

if TYPE_CHECKING:
    from phrsync.sandbox.app import Sandbox

# the OpenAPI description of a JSON-object body, for routes that read their body themselves
JSON_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object"}}}}}


def sandbox_of(request: Request) -> Sandbox:
    """The :class:`~phrsync.sandbox.app.Sandbox` serving this request (set by ``build_api``)."""
    return request.app.state.sandbox  # type: ignore[no-any-return]


def _principal(request: Request, *, facility_ok: bool = False, need: str = auth.PERM_UPLOAD) -> auth.Principal:
    sbx = sandbox_of(request)
    return auth.authenticate(sbx.store, sbx.cfg, request.headers.get("authorization"),
                             allow_facility_token=facility_ok, need=need)


# async: FastAPI runs a plain ``def`` dependency in the thread pool, a hop per request for a dict lookup
async def uploader(request: Request) -> auth.Principal:
    """A JWT with MOPH_PHR_HIE (every /api route but UpdatePHRv1 and check_ekyc)."""
    return _principal(request)


async def uploader_or_facility(request: Request) -> auth.Principal:
    """A JWT with MOPH_PHR_HIE or the facility's 1-year ``HCODE:TOKEN`` (UpdatePHRv1 only)."""
    return _principal(request, facility_ok=True)


async def idp_user(request: Request) -> auth.Principal:
    """A JWT with MOPH_IDP_API (eKYC status)."""
    return _principal(request, need=auth.PERM_IDP)


Uploader = Annotated[auth.Principal, Depends(uploader)]
UploaderOrFacility = Annotated[auth.Principal, Depends(uploader_or_facility)]
IdpUser = Annotated[auth.Principal, Depends(idp_user)]


def require_json(request: Request) -> None:
    """415 for a body labelled as anything but JSON in UTF-8 (``text/plain``, a form, ``charset=tis-620``).

    415 rather than 400: the payload was not examined, the client's label is wrong, and an agent must not file
    the record as refused for its content; like 400 it is not retried (:func:`phrsync.delivery.policy.retryable`).
    ``application/json`` and ``application/<x>+json`` are JSON; a body with no Content-Type at all is read as
    JSON, as before (RFC 8259: JSON is UTF-8), so a bare ``curl --data-binary`` still works."""
    ctype = request.headers.get("content-type")
    if ctype is None:
        return
    mime, _, params = ctype.partition(";")
    mime = mime.strip().lower()
    charset = ""
    for p in params.split(";"):
        k, _, v = p.partition("=")
        if k.strip().lower() == "charset":
            charset = v.strip().strip('"').lower()
    is_json = mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))
    if not is_json or charset not in ("", "utf-8", "utf8"):
        raise ApiError(415, f"unsupported Content-Type {ctype[:80]!r}: send application/json (UTF-8)",
                       "ชนิดข้อมูล (Content-Type) ไม่รองรับ ต้องส่งเป็น application/json แบบ UTF-8",
                       headers={"Accept": "application/json"})


async def read_body(request: Request) -> bytes:
    """The whole body, refused with 413 as soon as it is known to pass ``max_body_bytes``."""
    limit = sandbox_of(request).cfg.max_body_bytes
    cl = request.headers.get("content-length")
    if cl and cl.isdigit() and int(cl) > limit:
        raise ApiError(413, "payload too large", "ข้อมูลใหญ่เกินกำหนด")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload too large", "ข้อมูลใหญ่เกินกำหนด")
        chunks.append(chunk)
    return b"".join(chunks)


def loads(body: bytes) -> Any:
    """JSON of a non-upload body (chronic removal list, utility objects); a leading BOM is named as such,
    as the upload validator does, rather than reported as unreadable JSON."""
    if body.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        raise Bad([issue("$", "json_bom", "ข้อมูลขึ้นต้นด้วย BOM: ลบ BOM ออกและส่งเป็น UTF-8",
                         "body starts with a byte-order mark (BOM): remove it and send UTF-8")])
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise Bad([issue("$", "json_syntax", "รูปแบบ JSON ไม่ถูกต้อง", "body is not valid JSON")]) from e


async def json_object(request: Request) -> dict[str, Any]:
    """A utility call's JSON object body (empty body: no fields)."""
    require_json(request)
    body = await read_body(request)
    data = loads(body) if body.strip() else {}
    if not isinstance(data, dict):
        raise Bad([issue("$", "payload_object", "ข้อมูลต้องเป็นออบเจ็กต์ JSON", "payload must be a JSON object")])
    return data
