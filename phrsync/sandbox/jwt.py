"""Minimal HS256 JWT and MOPH ``password_hash`` helpers, written on hmac/hashlib so the sandbox needs no
extra dependency and the exact bytes on the wire are under our control."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


class TokenError(ValueError):
    """A bearer token that must be refused; ``expired`` separates 'log in again' from 'forged'."""

    def __init__(self, reason: str, expired: bool = False) -> None:
        super().__init__(reason)
        self.expired = expired


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    pad = "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text + pad)


def encode(claims: dict[str, Any], secret: bytes) -> str:
    """Sign ``claims`` with HS256 and return the compact JWT text."""
    header = {"alg": "HS256", "typ": "JWT"}
    h = _b64e(json.dumps(header, separators=(",", ":")).encode())
    p = _b64e(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
    signing_input = f"{h}.{p}".encode("ascii")
    sig = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{h}.{p}.{_b64e(sig)}"


def decode(token: str, secret: bytes, now: float | None = None, leeway: float = 0.0) -> dict[str, Any]:
    """Verify signature, algorithm and ``exp``; return the claims or raise :class:`TokenError`."""
    token = token.strip()
    parts = token.split(".")
    if len(parts) != 3 or not token.isascii():  # a non-ASCII byte can never be base64url: refuse, not crash
        raise TokenError("malformed token")
    h, p, s = parts
    try:
        header = json.loads(_b64d(h))
        sig = _b64d(s)
    except (ValueError, UnicodeDecodeError) as e:
        raise TokenError("malformed token") from e
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise TokenError("unsupported algorithm")  # refuses alg=none and key-confusion tricks
    expected = hmac.new(secret, f"{h}.{p}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(sig, expected):
        raise TokenError("bad signature")
    try:
        claims = json.loads(_b64d(p))
    except (ValueError, UnicodeDecodeError) as e:
        raise TokenError("malformed claims") from e
    if not isinstance(claims, dict):
        raise TokenError("malformed claims")
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise TokenError("token without exp")
    t = time.time() if now is None else now
    if t > exp + leeway:
        raise TokenError("token expired", expired=True)
    return claims


def password_hash(password: str, key: str | bytes) -> str:
    """MOPH Account Center ``password_hash``: upper-case hex HMAC-SHA256 of the password (community-attested
    recipe; the key comes from configuration, never from the code)."""
    k = key.encode() if isinstance(key, str) else key
    return hmac.new(k, password.encode("utf-8"), hashlib.sha256).hexdigest().upper()


def digest(secret_text: str) -> str:
    """What the database keeps instead of a credential: its SHA-256, so a stolen file reveals nothing usable."""
    return hashlib.sha256(secret_text.encode("utf-8")).hexdigest()
