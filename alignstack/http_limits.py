"""Request limits for the two web apps (``alignstack label`` and ``alignstack serve``), as pure ASGI
middleware that runs before routing, body parsing and authentication.

Why ASGI and not a FastAPI dependency: a route (or the framework's form parser) reads the whole
body before any dependency runs, so four unauthenticated 100 MB uploads grew the label server by
700 MB, and JSON nested 10^5 deep raised ``RecursionError`` inside ``json.loads`` (a 500). Here the
body is counted while it arrives and refused past ``max_body`` bytes (413), and its bracket depth
is measured by a linear scan, without parsing, and refused past ``max_depth`` (400).

The middleware also answers an exception that escaped the app with a 500 in the app's own error
shape instead of letting it reach the server, which would close the keep-alive connection and
reset the client's next request on it.

Standard library only: the apps import it, nothing here imports a web framework.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable

log = logging.getLogger(__name__)

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_FORM_TYPES = (b"multipart/form-data", b"application/x-www-form-urlencoded")

# (status, message) -> (body bytes, content type): renders an error in the app's own shape.
ErrorRenderer = Callable[[int, str], tuple[bytes, str]]


def json_depth(body: bytes, limit: int) -> int:
    """The bracket nesting depth of ``body`` (JSON text), counting at most up to ``limit + 1``.

    Strings are blanked out first so brackets inside them do not count. Linear time and no
    recursion, so it is safe on any input; malformed JSON just gets some depth (the parser then
    rejects it properly)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return min(limit, body.count(b"[") + body.count(b"{"))
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    depth = deepest = 0
    for c in brackets:
        depth = depth + 1 if c in b"[{" else max(0, depth - 1)
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                break
    return deepest


class RequestLimits:
    """ASGI middleware: body size cap (``max_body`` bytes, or ``path_limits[path]``), JSON depth cap
    (``max_depth``), and a last-resort 500 in the app's error shape. ``render(status, message)``
    builds the error body. Form and multipart bodies stream through, counted; any other body is
    buffered (at most the cap) so its depth can be measured before the app parses it."""

    def __init__(self, app, *, render: ErrorRenderer, max_body: int = 1 << 20, max_depth: int = 64,
                 path_limits: dict[str, int] | None = None):
        self.app, self.render, self.max_body, self.max_depth = app, render, max_body, max_depth
        self.path_limits = dict(path_limits or {})

    async def _send_error(self, send, status: int, message: str, close: bool = False) -> None:
        body, ctype = self.render(status, message)
        headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
        if close:  # the unread rest of the body is still on the wire: the connection cannot be reused
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope.get("path", ""), self.max_body)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await self._send_error(send, 400, "malformed Content-Length header", close=True)
                return
            if int(declared) > limit:
                await self._send_error(send, 413, f"request body too large: {int(declared)} bytes; "
                                                  f"the limit is {limit}", close=True)
                return
        ctype = headers.get(b"content-type", b"").lower()
        responded = False  # we answered 413 mid-stream: whatever the app does next is dropped
        if ctype.startswith(_FORM_TYPES):
            # forms stream through (the multipart parser spools large files to disk), counted
            size = 0

            async def inner_receive():
                nonlocal size, responded
                message = await receive()
                if message["type"] == "http.request":
                    size += len(message.get("body", b""))
                    if size > limit and not responded:
                        responded = True
                        await self._send_error(send, 413, f"request body too large: over {limit} bytes",
                                               close=True)
                        return {"type": "http.disconnect"}  # the app stops reading and gives up
                return message
        else:
            # JSON (or anything else) is buffered, up to the cap, so its depth can be measured
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    await self._send_error(send, 413, f"request body too large: over {limit} bytes", close=True)
                    return
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            if body and json_depth(body, self.max_depth) > self.max_depth:
                await self._send_error(send, 400, f"JSON nested deeper than {self.max_depth} levels")
                return
            replayed = False

            async def inner_receive():
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

        started = False

        async def tracking_send(message):
            nonlocal started
            if responded:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, inner_receive, tracking_send)
        except Exception:
            if responded:
                return  # the 413 is out; the app's complaint about the cut-off body is moot
            if started:
                raise  # half a response is out: only closing the connection can signal the failure
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            await self._send_error(send, 500, "internal server error")
