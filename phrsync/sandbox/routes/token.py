"""Account Center imitation: ``/token?Action=get_moph_access_token`` returns the raw JWT text."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, Response

from phrsync.sandbox import auth
from phrsync.sandbox.deps import read_body, sandbox_of
from phrsync.sandbox.envelope import ApiError

router = APIRouter(tags=["auth"])


@router.get("/token", response_class=PlainTextResponse, operation_id="token_get",
            summary="MOPH Account Center: get_moph_access_token (query parameters)")
@router.post("/token", response_class=PlainTextResponse, operation_id="token_post",
             summary="MOPH Account Center: get_moph_access_token (returns the raw JWT text)")
async def token(request: Request, Action: str = Query(...), user: str | None = None,  # noqa: N803
                password_hash: str | None = None, hospital_code: str | None = None) -> Response:
    # credentials from the query string, or from a JSON body whose string fields take precedence
    if Action != "get_moph_access_token":
        raise ApiError(404, "unknown Action", "ไม่รู้จัก Action")
    fields = {"user": user, "password_hash": password_hash, "hospital_code": hospital_code}
    body = await read_body(request)
    if body.strip():
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise ApiError(400, "body is not valid JSON", "รูปแบบ JSON ไม่ถูกต้อง") from e
        if isinstance(data, dict):
            for k in fields:
                if isinstance(data.get(k), str):
                    fields[k] = data[k]
    sbx = sandbox_of(request)
    jwt_text = await run_in_threadpool(auth.login, sbx.store, sbx.cfg, fields["user"] or "",
                                       fields["password_hash"] or "", fields["hospital_code"] or "")
    return PlainTextResponse(jwt_text)
