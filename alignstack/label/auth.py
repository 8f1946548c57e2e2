"""Passwords, signed session cookies and CSRF tokens, from the standard library only.

- Passwords: scrypt (memory-hard, in ``hashlib``) with a random 16-byte salt per user; the
  parameters are stored with the hash so they can be raised later without breaking old accounts.
  Verification compares with :func:`hmac.compare_digest` (constant time).
- Sessions: the cookie is ``base64(json) "." base64(hmac_sha256(secret, json))``. It carries the
  user id, a per-session CSRF token and the issue time. The secret lives in the database so
  sessions survive a server restart (the load test kills the server mid-run).
- CSRF: every POST must echo the session's token (form field ``csrf_token`` or header
  ``X-CSRF-Token``); anonymous visitors get a token-only session so the login form is covered too.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
import time

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SESSION_COOKIE = "alignstack_label_session"
SESSION_MAX_AGE = 12 * 3600
ROLES = ("admin", "annotator")


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    if not password:
        raise ValueError("password must not be empty")
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(dk)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        algo, n, r, p, salt, dk = stored.split("$")
        if algo != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(_unb64(dk)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, _unb64(dk))


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password, checked when the user name is unknown so that a login attempt
    costs the same time whether or not the account exists."""
    return hash_password(secrets.token_urlsafe(16))


def new_secret() -> str:
    return secrets.token_hex(32)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def sign_session(data: dict, secret: str) -> str:
    body = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}"


def load_session(cookie: str | None, secret: str, *, now: float | None = None) -> dict | None:
    """The session dict if the cookie is authentic and not older than SESSION_MAX_AGE, else None."""
    if not cookie or "." not in cookie:
        return None
    body_b64, mac_b64 = cookie.split(".", 1)
    try:
        body, mac = _unb64(body_b64), _unb64(mac_b64)
    except ValueError:
        return None
    if not hmac.compare_digest(mac, hmac.new(secret.encode(), body, hashlib.sha256).digest()):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
        return None
    now = time.time() if now is None else now
    if not isinstance(data.get("iat"), (int, float)) or now - data["iat"] > SESSION_MAX_AGE:
        return None
    return data


def csrf_ok(session: dict | None, token: str | None) -> bool:
    return bool(session and token) and hmac.compare_digest(session["csrf"].encode(), token.encode())


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64(s: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except (ValueError, TypeError) as e:
        raise ValueError("bad base64") from e
