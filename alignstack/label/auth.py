"""Passwords, signed session cookies and CSRF tokens, from the standard library only.

- Passwords: scrypt (memory-hard, in ``hashlib``) with a random 16-byte salt per user; the
  parameters are stored with the hash so they can be raised later without breaking old accounts.
  Verification compares with :func:`hmac.compare_digest` (constant time).
- Sessions: the cookie is ``base64(json) "." base64(hmac_sha256(secret, json))``. It carries the
  user id, a per-session CSRF token and the issue time. The secret lives in the database so
  sessions survive a server restart (the load test kills the server mid-run).
- Logout: a logged-in cookie also carries a random session id; logout records it as revoked in
  the database, so a copy of the cookie is dead after logout, not valid for the rest of its 12 h.
- Login throttling (:class:`LoginThrottle`): failed logins back off per account and per client
  address, checked before any hashing; the app also lets only a few scrypt hashes run at once.
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


def new_session_id() -> str:
    """Names a logged-in session so logout can revoke it server-side (``revoked_sessions``)."""
    return secrets.token_urlsafe(16)


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


class LoginThrottle:
    """Failed-login backoff per account and per client address (in memory, per server process).

    The first ``free`` failures of a key cost nothing; each further failure locks that key for
    ``base * 2**k`` seconds (capped at ``cap``), and a key forgets its failures ``forget`` seconds
    after the last one. A locked key is refused before any password hashing, so guessing is slowed
    from ~15/s to a handful per minute per account and per address. Addresses get more free
    failures than accounts because several people can share one (an office behind NAT). A success
    clears the account's failures but not the address's, so guessing at others' accounts from an
    address cannot be laundered by logging into one's own.
    """

    def __init__(self, *, free_account: int = 5, free_address: int = 20, base: float = 1.0, cap: float = 300.0,
                 forget: float = 900.0, max_keys: int = 100_000):
        import threading

        self.free = {"account": free_account, "address": free_address}
        self.base, self.cap, self.forget, self.max_keys = base, cap, forget, max_keys
        self._fails: dict[tuple[str, str], tuple[int, float, float]] = {}  # key -> (failures, last, locked_until)
        self._lock = threading.Lock()

    def _keys(self, account: str, address: str) -> list[tuple[str, str]]:
        return [("account", account.strip().lower()[:100]), ("address", address)]

    def retry_after(self, account: str, address: str, now: float | None = None) -> float:
        """Seconds until a login for ``account`` from ``address`` may be tried; 0 if it may now."""
        now = time.time() if now is None else now
        with self._lock:
            wait = 0.0
            for key in self._keys(account, address):
                entry = self._fails.get(key)
                if entry is not None:
                    wait = max(wait, entry[2] - now)
            return max(0.0, wait)

    def failed(self, account: str, address: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            if len(self._fails) >= self.max_keys:  # bound memory under a spray of names/addresses
                self._fails = {k: v for k, v in self._fails.items() if now - v[1] < self.forget}
                if len(self._fails) >= self.max_keys:
                    self._fails.clear()
            for key in self._keys(account, address):
                n, last, _until = self._fails.get(key, (0, now, 0.0))
                n = 1 if now - last > self.forget else n + 1
                extra = n - self.free[key[0]]
                until = now + min(self.cap, self.base * 2 ** min(extra - 1, 30)) if extra > 0 else 0.0
                self._fails[key] = (n, now, until)

    def succeeded(self, account: str) -> None:
        with self._lock:
            self._fails.pop(("account", account.strip().lower()[:100]), None)
