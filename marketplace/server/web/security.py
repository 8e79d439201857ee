"""Browser-facing security: response headers, the signed session cookie and CSRF tokens.

Invariants:
- Every response leaves with `CONTENT_SECURITY_POLICY` (no inline script or style, nothing from
  another origin, no framing, forms post only to this origin) plus nosniff, no-referrer and a
  deny-all frame policy, JSON and the API docs page included (its Swagger UI is served from
  this origin with its initializer in a static file, see `apidocs`). A response that sets its
  own CSP keeps it.
- The session cookie is `base64(json) + "." + HMAC-SHA256(secret, base64(json))`, HttpOnly,
  SameSite=Strict and Path=/. A cookie whose MAC does not verify is ignored, never trusted in
  part. It carries a random session id and, once signed in, the user's API token: the token is
  re-authenticated against the registry on every request, so a revoked token ends the session.
- A CSRF token is HMAC(secret, "csrf" + session id): bound to the session, unforgeable without
  the server's secret, and checked with a constant-time comparison on every POST form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
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
SESSION_MAX_AGE = 7 * 24 * 3600
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


@dataclass(frozen=True)
class Session:
    """What the session cookie holds: a random id and, when signed in, the API token."""

    sid: str
    token: str | None = None

    @classmethod
    def new(cls, token: str | None = None) -> Session:
        return cls(secrets.token_urlsafe(18), token)


class SessionSigner:
    """Signs and verifies session cookies and derives CSRF tokens from one server secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the web session secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, payload: bytes) -> str:
        digest = hmac.new(self._secret, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def dumps(self, session: Session) -> str:
        body = json.dumps({"sid": session.sid, "token": session.token}, separators=(",", ":"))
        payload = base64.urlsafe_b64encode(body.encode()).rstrip(b"=")
        return f"{payload.decode()}.{self._mac(payload)}"

    def loads(self, cookie: str | None) -> Session | None:
        """The session in `cookie`, or None when absent, malformed or not signed by us."""
        if not cookie or "." not in cookie or len(cookie) > 4096:
            return None
        payload, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(payload.encode())):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        sid, token = data.get("sid"), data.get("token")
        if not isinstance(sid, str) or not (token is None or isinstance(token, str)):
            return None
        return Session(sid, token)

    def csrf_token(self, session: Session) -> str:
        return self._mac(b"csrf:" + session.sid.encode())

    def check_csrf(self, session: Session | None, submitted: str | None) -> bool:
        if session is None or not submitted:
            return False
        return hmac.compare_digest(self.csrf_token(session), submitted)


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
