"""HS256 JWT (through PyJWT) and the MOPH ``password_hash`` and credential-digest helpers.

Signature, algorithm and token shape are PyJWT's; expiry is checked here against the caller's clock, because the
sandbox runs on its settings' clock (tests rehearse an expired token with a fake clock) and PyJWT knows only the
wall clock."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import jwt as pyjwt

ALGORITHM = "HS256"
# only the signature, the algorithm and a present ``exp`` are PyJWT's to check; times are checked below
_OPTIONS: Any = {"require": ["exp"], "verify_exp": False, "verify_iat": False, "verify_nbf": False,
                 "verify_aud": False, "verify_iss": False}


class TokenError(ValueError):
    """A bearer token that must be refused; ``expired`` separates 'log in again' from 'forged'."""

    def __init__(self, reason: str, expired: bool = False) -> None:
        super().__init__(reason)
        self.expired = expired


def encode(claims: dict[str, Any], secret: bytes) -> str:
    """Sign ``claims`` with HS256 and return the compact JWT text."""
    return pyjwt.encode(claims, secret, algorithm=ALGORITHM)


def decode(token: str, secret: bytes, now: float | None = None, leeway: float = 0.0) -> dict[str, Any]:
    """Verify signature, algorithm (HS256 only: no ``alg=none``) and ``exp`` at ``now``; return the claims or
    raise :class:`TokenError`."""
    token = token.strip()
    if not token.isascii():  # a non-ASCII byte can never be base64url: refuse, not crash
        raise TokenError("malformed token")
    try:
        claims = pyjwt.decode(token, secret, algorithms=[ALGORITHM], options=_OPTIONS)
    except pyjwt.MissingRequiredClaimError as e:
        raise TokenError("token without exp") from e
    except pyjwt.InvalidAlgorithmError as e:
        raise TokenError("unsupported algorithm") from e
    except pyjwt.InvalidSignatureError as e:
        raise TokenError("bad signature") from e
    except pyjwt.InvalidTokenError as e:
        raise TokenError("malformed token") from e
    if not isinstance(claims, dict):
        raise TokenError("malformed claims")
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
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
