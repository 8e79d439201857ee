"""Browser-facing security: response headers, the session cookie and CSRF tokens.

Invariants:
- Every response leaves with `CONTENT_SECURITY_POLICY` (no inline script or style, nothing from
  another origin, no framing, forms post only to this origin) plus nosniff, no-referrer and a
  deny-all frame policy, JSON and the API docs page included (its Swagger UI is served from
  this origin with its initializer in a static file, see `apidocs`). A response that sets its
  own CSP keeps it.
- The session cookie holds one opaque, random 256-bit id (43 url-safe characters), nothing
  else: no token, no name. HttpOnly, SameSite=Strict, Path=/, Secure when the browser came over
  https. Signed in, the id names a server-side session (`registry` table `web_session`, only
  its sha256 stored) that ends at its expiry, at sign-out (the row is deleted, so a copied
  cookie is worthless) or when the token it was opened with is revoked. An id that names no
  live session is an anonymous visitor's, whatever it was before; a cookie of any other shape
  is ignored.
- CSRF: a signed-in session's forms echo its own random secret, stored with it; an anonymous
  visitor's (the sign-in form) echo HMAC(server secret, "csrf:" + id), so they need no row. Both
  are compared in constant time on every POST form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_COMMON_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
SESSION_COOKIE = "af_session"
SECRET_FILE = "web-session.key"


class SecurityHeadersMiddleware:
    """Pure ASGI (it wraps every response, so it must cost microseconds, not a thread hop)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in _COMMON_HEADERS if h[0] not in present)
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")


def new_session_id() -> str:
    """A fresh random id: 32 bytes (256 bits), url-safe base64 without padding."""
    return secrets.token_urlsafe(32)


def read_session_id(cookie: str | None) -> str | None:
    """The session id in `cookie`, or None when absent or not of the shape we issue."""
    if cookie is None or SESSION_ID.fullmatch(cookie) is None:
        return None
    return cookie


class CsrfSigner:
    """Derives anonymous visitors' CSRF tokens from one server secret, and checks tokens."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the web session secret must be at least 16 bytes")
        self._secret = secret

    def anonymous_token(self, session_id: str) -> str:
        digest = hmac.new(self._secret, b"csrf:" + session_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    @staticmethod
    def matches(expected: str, submitted: str | None) -> bool:
        if not expected or not submitted:
            return False
        return hmac.compare_digest(
            expected.encode(), submitted.encode("utf-8", "surrogatepass")
        )


def load_or_create_secret(home: Path) -> bytes:
    """The server's session secret, kept in `home/web-session.key` (mode 0600) so several
    workers sharing one home, and restarts, keep sessions valid."""
    path = home / SECRET_FILE
    try:
        secret = path.read_bytes()
        if len(secret) >= 32:
            return secret
    except FileNotFoundError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
    try:
        # link() fails if another worker won the race; then everyone uses the winner's secret.
        os.link(tmp, path)
    except FileExistsError:
        secret = path.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)
    return secret
