"""Passwords, session cookies and CSRF tokens (alignstack.label.auth)."""
import time

from alignstack.label import auth


def test_password_hash_roundtrip_and_salt():
    h1 = auth.hash_password("correct horse")
    h2 = auth.hash_password("correct horse")
    assert h1.startswith("scrypt$") and h1 != h2  # per-user random salt
    assert "correct horse" not in h1
    assert auth.verify_password("correct horse", h1)
    assert auth.verify_password("correct horse", h2)
    assert not auth.verify_password("correct horsE", h1)
    assert not auth.verify_password("", h1)


def test_password_hash_garbage_is_rejected_not_raised():
    for stored in ("", "md5$abc", "scrypt$x$y$z$salt$dk", "scrypt$16384$8$1$!!!$???"):
        assert auth.verify_password("pw", stored) is False


def test_parameters_are_stored_with_the_hash():
    h = auth.hash_password("pw", n=2**10, r=8, p=1)
    assert h.split("$")[1:4] == ["1024", "8", "1"]
    assert auth.verify_password("pw", h)


def test_session_cookie_is_signed_and_expires():
    secret = auth.new_secret()
    data = {"uid": 3, "csrf": "tok", "iat": time.time()}
    cookie = auth.sign_session(data, secret)
    assert auth.load_session(cookie, secret) == data
    assert auth.load_session(cookie, auth.new_secret()) is None  # wrong key
    body, mac = cookie.split(".")
    forged = auth.sign_session({**data, "uid": 1}, secret).split(".")[0] + "." + mac
    assert auth.load_session(forged, secret) is None  # body swapped under an old MAC
    assert auth.load_session("garbage", secret) is None
    assert auth.load_session(cookie, secret, now=time.time() + auth.SESSION_MAX_AGE + 1) is None


def test_csrf_compare():
    sess = {"csrf": auth.new_csrf_token()}
    assert auth.csrf_ok(sess, sess["csrf"])
    assert not auth.csrf_ok(sess, "x" + sess["csrf"])
    assert not auth.csrf_ok(sess, None)
    assert not auth.csrf_ok(None, "anything")
