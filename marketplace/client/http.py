"""HTTP client of the marketplace API (`/api/v1`), sync and async, over httpx.

Invariants:
- one method per endpoint; every non-2xx answer becomes `ApiError` carrying the server's problem
  `detail` and `code`; transport failures become `ConnectionFailed`. No raw httpx error escapes.
- downloads are streamed: the size cap is enforced on the bytes actually received (a lying or
  missing Content-Length cannot make the client buffer more than the cap), and the sha256 is
  computed on the same pass. Verifying digest and signature is the installer's job.
- a download answered with a redirect (the registry's blobs in object storage, a pre-signed
  URL) is followed at most `MAX_REDIRECTS` times, each target checked by the http rule below,
  without the token; the size cap and sha256 apply to the bytes from the last hop, and the
  release's digest and signature headers are those of the registry's own answer.
- the token goes only in `Authorization: Bearer`; it is never put in a URL or an error message.
- with a `request_id` (or `$AGENTFACTORY_REQUEST_ID`), every request carries it as `X-Request-ID`,
  so the server's audit trail and logs tie the client's requests together; a value the server
  would not accept (`core.context.acceptable`) is not sent.
- plain `http` is refused before any connection unless the host is this machine (127.0.0.0/8,
  ::1, localhost) or the user opted in (`allow_http=True`, `AGENTFACTORY_ALLOW_HTTP=1`, the CLI's
  `--insecure-http`): a man in the middle could otherwise read the token and rewrite answers. An
  injected transport (tests, an in-process app) sends nothing over the network and is not checked.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

import httpx

from core.context import ENV as REQUEST_ID_ENV
from core.context import HEADER as REQUEST_ID_HEADER
from core.context import acceptable
from marketplace.client.errors import (
    ApiError,
    ConnectionFailed,
    DownloadTooLarge,
    InsecureUrl,
    NotLoggedIn,
)
from marketplace.client.records import (
    AuditEvent,
    Download,
    KeyInfo,
    PackageDetail,
    PackageSummary,
    Page,
    Publisher,
    RatingSummary,
    Registration,
    Release,
    Review,
    Run,
    RunEvent,
    TokenInfo,
    WhoAmI,
)

if TYPE_CHECKING:
    from marketplace.client.logtrust import (
        ConsistencyInfo,
        EntriesInfo,
        InclusionInfo,
        LogKeyInfo,
        TreeHeadInfo,
    )

API = "/api/v1"
DEFAULT_MAX_DOWNLOAD = 10 * 1024 * 1024
MAX_REDIRECTS = 3
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
Progress = Callable[[int, int | None], None]
"""Called with (bytes received so far, total bytes if known) while downloading."""


ALLOW_HTTP_ENV = "AGENTFACTORY_ALLOW_HTTP"


def is_loopback(host: str) -> bool:
    """True for `localhost` and any loopback address (127.0.0.0/8, ::1)."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_secure_url(url: str, allow_http: bool | None = None) -> None:
    """Raise `InsecureUrl(url)` for plain http to another machine, unless allowed.

    `allow_http=None` reads `AGENTFACTORY_ALLOW_HTTP` (1/true/yes)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return  # not a URL at all: the request itself reports it
    if parsed.scheme != "http" or is_loopback(parsed.host):
        return
    if allow_http is None:
        allow_http = os.environ.get(ALLOW_HTTP_ENV, "").strip().lower() in ("1", "true", "yes")
    if not allow_http:
        raise InsecureUrl(url)


def package_path(name: str) -> str:
    """`ns/name` -> `/packages/ns/name` with each segment URL-quoted."""
    namespace, _, short = name.partition("/")
    return f"/packages/{quote(namespace, safe='')}/{quote(short, safe='')}"


def check(response: httpx.Response) -> httpx.Response:
    """Return the response when it is a success, else raise `ApiError` from its problem body."""
    if response.is_success:
        return response
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    text = response.reason_phrase or f"HTTP {response.status_code}"
    raise ApiError.from_problem(response.status_code, body, fallback=text)


def request_id_headers(request_id: str | None) -> dict[str, str]:
    """`X-Request-ID: request_id` (None: `$AGENTFACTORY_REQUEST_ID`) when acceptable, else
    nothing (the server then makes an id of its own)."""
    chosen = acceptable(request_id if request_id is not None else os.environ.get(REQUEST_ID_ENV))
    return {REQUEST_ID_HEADER: chosen} if chosen else {}


def redirect_target(response: httpx.Response, allow_http: bool | None) -> str:
    """The absolute URL a redirect points to, refused like the registry's own URL
    (`require_secure_url`) when it is plain http to another machine. An `InsecureUrl` names
    the target without its query, which for a pre-signed URL is a credential."""
    location = response.headers.get("location")
    if not location:
        raise ApiError(response.status_code, "", "the download was redirected nowhere")
    target = response.url.join(location)
    try:
        require_secure_url(str(target), allow_http)
    except InsecureUrl:
        raise InsecureUrl(str(target.copy_with(query=None))) from None
    return str(target)


class _Base:
    _allow_http: bool | None = None

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def _headers(self, auth: bool, action: str) -> dict[str, str]:
        if not auth:
            return {}
        if not self.token:
            raise NotLoggedIn(action)
        return {"Authorization": f"Bearer {self.token}"}


class MarketplaceClient(_Base):
    """Synchronous client. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        allow_http: bool | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(base_url, token)
        self._allow_http = allow_http  # also decides where a download may be redirected
        if transport is None:
            require_secure_url(self.base_url, allow_http)
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport,
            headers=request_id_headers(request_id),
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(
        self, method: str, path: str, *, auth: bool = False, action: str = "", **kwargs: Any
    ) -> httpx.Response:
        headers = self._headers(auth, action or f"{method} {path}")
        url = path if path.startswith("/healthz") else API + path
        try:
            response = self._http.request(method, url, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailed(self.base_url, str(exc) or type(exc).__name__) from None
        return check(response)

    # -- service -------------------------------------------------------------------------------
    def healthz(self) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", "/healthz").json()
        return data

    # -- publishers, tokens, keys --------------------------------------------------------------
    def register(self, name: str, namespace: str | None = None, email: str | None = None
                 ) -> Registration:
        body = {"name": name, "namespace": namespace, "email": email}
        payload = {k: v for k, v in body.items() if v is not None}
        return Registration.model_validate(self._call("POST", "/publishers", json=payload).json())

    def publisher(self, name: str) -> Publisher:
        return Publisher.model_validate(self._call("GET", f"/publishers/{quote(name)}").json())

    def create_token(self, scopes: list[str]) -> TokenInfo:
        r = self._call("POST", "/tokens", auth=True, action="creating a token",
                       json={"scopes": scopes})
        return TokenInfo.model_validate(r.json())

    def revoke_token(self, token_id: str) -> None:
        self._call("DELETE", f"/tokens/{quote(str(token_id))}", auth=True, action="revoking")

    def add_key(self, public_key: bytes, rotation_signature: bytes | None = None,
                signed_by: str | None = None) -> KeyInfo:
        body: dict[str, Any] = {"public_key": base64.b64encode(public_key).decode()}
        if rotation_signature is not None:
            body["rotation_signature"] = base64.b64encode(rotation_signature).decode()
            body["signed_by"] = signed_by
        r = self._call("POST", "/keys", auth=True, action="adding a key", json=body)
        return KeyInfo.model_validate(r.json())

    def revoke_key(self, key_id: str) -> None:
        self._call("DELETE", f"/keys/{quote(key_id)}", auth=True, action="revoking a key")

    def key(self, key_id: str) -> KeyInfo:
        return KeyInfo.model_validate(self._call("GET", f"/keys/{quote(key_id)}").json())

    def publisher_keys(self, publisher: str) -> list[KeyInfo]:
        data = self._call("GET", f"/publishers/{quote(publisher)}/keys").json()
        items = data.get("items", data) if isinstance(data, dict) else data
        return [KeyInfo.model_validate(item) for item in items]

    # -- packages ------------------------------------------------------------------------------
    def publish(self, archive: bytes, signature: bytes, key_id: str,
                filename: str = "package.zip") -> Release:
        r = self._call(
            "POST", "/packages", auth=True, action="publishing",
            files={"archive": (filename, archive, "application/zip")},
            data={"signature": base64.b64encode(signature).decode(), "key_id": key_id},
        )
        return Release.model_validate(r.json())

    def search(self, q: str = "", *, sort: str = "relevance", capability: str | None = None,
               tool: str | None = None, page: int = 1, per_page: int = 20
               ) -> Page[PackageSummary]:
        params = {"q": q, "sort": sort, "capability": capability, "tool": tool,
                  "page": page, "per_page": per_page}
        r = self._call("GET", "/packages",
                       params={k: v for k, v in params.items() if v is not None})
        return Page[PackageSummary].model_validate(r.json())

    def package(self, name: str) -> PackageDetail:
        return PackageDetail.model_validate(self._call("GET", package_path(name)).json())

    def versions(self, name: str) -> list[Release]:
        data = self._call("GET", package_path(name) + "/versions").json()
        items = data.get("items", data) if isinstance(data, dict) else data
        return [Release.model_validate(item) for item in items]

    def resolve(self, name: str, spec: str = "", prereleases: bool = False) -> Release:
        r = self._call("GET", package_path(name) + "/resolve",
                       params={"spec": spec, "prereleases": str(prereleases).lower()})
        return Release.model_validate(r.json())

    def download(self, name: str, version: str, *, max_bytes: int = DEFAULT_MAX_DOWNLOAD,
                 install: bool = False, progress: Progress | None = None) -> Download:
        """Stream one archive, refusing it past `max_bytes`, hashing it on the way."""
        url = f"{API}{package_path(name)}/versions/{quote(version)}/download"
        params = {"install": "1"} if install else {}
        # With a token, the registry records that this account downloaded the release: what
        # makes its review of that version verified. Without one the download is anonymous.
        headers = self._headers(True, "") if self.token else {}
        try:
            with self._http.stream("GET", url, params=params, headers=headers) as response:
                if response.is_redirect:
                    return self._follow(name, version, response, max_bytes, progress)
                if not response.is_success:
                    response.read()
                    check(response)
                return _collect(name, version, response, response.iter_bytes(), max_bytes,
                                progress)
        except httpx.TransportError as exc:
            raise ConnectionFailed(self.base_url, str(exc) or type(exc).__name__) from None

    def _follow(self, name: str, version: str, answer: httpx.Response, max_bytes: int,
                progress: Progress | None) -> Download:
        """The archive at the place the registry's `answer` sends us (see the invariants)."""
        response = answer
        for _hop in range(MAX_REDIRECTS):
            target = redirect_target(response, self._allow_http)
            with self._http.stream("GET", target) as response:
                if response.is_redirect:
                    continue
                if not response.is_success:
                    response.read()
                    check(response)
                return _collect(name, version, response, response.iter_bytes(), max_bytes,
                                progress, claims=answer.headers)
        raise ApiError(response.status_code, "", f"the download of {name} {version} was "
                       f"redirected more than {MAX_REDIRECTS} times")

    def yank(self, name: str, version: str, reason: str) -> None:
        self._call("POST", f"{package_path(name)}/versions/{quote(version)}/yank", auth=True,
                   action="yanking", json={"reason": reason})

    def unyank(self, name: str, version: str) -> None:
        self._call("DELETE", f"{package_path(name)}/versions/{quote(version)}/yank", auth=True,
                   action="unyanking")

    def deprecate(self, name: str, version: str, reason: str, successor: str | None = None
                  ) -> Release:
        body: dict[str, Any] = {"reason": reason}
        if successor:
            body["successor"] = successor
        r = self._call("POST", f"{package_path(name)}/versions/{quote(version)}/deprecate",
                       auth=True, action="deprecating", json=body)
        return Release.model_validate(r.json())

    def undeprecate(self, name: str, version: str) -> Release:
        r = self._call("DELETE", f"{package_path(name)}/versions/{quote(version)}/deprecate",
                       auth=True, action="undeprecating")
        return Release.model_validate(r.json())

    def revoke(self, name: str, version: str, reason: str, signature: bytes | None = None,
               key_id: str | None = None) -> Release:
        """Revoke a release, with the publisher's signature of the statement (an admin token
        may send none: the registry then signs with its own key)."""
        body: dict[str, Any] = {"reason": reason}
        if signature is not None:
            body["signature"] = base64.b64encode(signature).decode()
            body["key_id"] = key_id
        r = self._call("POST", f"{package_path(name)}/versions/{quote(version)}/revoke",
                       auth=True, action="revoking", json=body)
        return Release.model_validate(r.json())

    def revocations(self) -> dict[str, Any]:
        """The registry's signed revocation list, as served (verify before use:
        `marketplace.client.retirement`)."""
        data: dict[str, Any] = self._call("GET", "/revocations").json()
        return data

    def whoami(self) -> WhoAmI:
        r = self._call("GET", "/whoami", auth=True, action="asking who you are")
        return WhoAmI.model_validate(r.json())

    # -- release log (records and checks: marketplace.client.logtrust) -------------------------
    def log_key(self) -> LogKeyInfo:
        from marketplace.client.logtrust import LogKeyInfo

        return LogKeyInfo.model_validate(self._call("GET", "/log/key").json())

    def log_head(self) -> TreeHeadInfo:
        from marketplace.client.logtrust import TreeHeadInfo

        return TreeHeadInfo.model_validate(self._call("GET", "/log/head").json())

    def log_inclusion(self, name: str, version: str) -> InclusionInfo:
        from marketplace.client.logtrust import InclusionInfo

        r = self._call("GET", "/log/proof/inclusion", params={"name": name, "version": version})
        return InclusionInfo.model_validate(r.json())

    def log_consistency(self, old: int, new: int | None = None) -> ConsistencyInfo:
        from marketplace.client.logtrust import ConsistencyInfo

        params = {"from": old} if new is None else {"from": old, "to": new}
        r = self._call("GET", "/log/proof/consistency", params=params)
        return ConsistencyInfo.model_validate(r.json())

    def log_entries(self, start: int, limit: int = 1000) -> EntriesInfo:
        from marketplace.client.logtrust import EntriesInfo

        r = self._call("GET", "/log/entries", params={"start": start, "limit": limit})
        return EntriesInfo.model_validate(r.json())

    # -- reviews -------------------------------------------------------------------------------
    def reviews(self, name: str, page: int = 1, per_page: int = 20) -> Page[Review]:
        r = self._call("GET", package_path(name) + "/reviews",
                       params={"page": page, "per_page": per_page})
        return Page[Review].model_validate(r.json())

    def rate(self, name: str, stars: int, title: str = "", body: str = "",
             version: str | None = None) -> Review:
        payload: dict[str, Any] = {"stars": stars, "title": title, "body": body}
        if version:
            payload["version"] = version
        r = self._call("PUT", package_path(name) + "/reviews", auth=True, action="rating",
                       json=payload)
        return Review.model_validate(r.json())

    def delete_review(self, name: str) -> None:
        self._call("DELETE", package_path(name) + "/reviews", auth=True, action="deleting")

    def reply(self, review_id: int | str, text: str) -> Review:
        r = self._call("POST", f"/reviews/{review_id}/reply", auth=True, action="replying",
                       json={"text": text})
        return Review.model_validate(r.json())

    def flag(self, review_id: int | str, reason: str) -> None:
        self._call("POST", f"/reviews/{review_id}/flag", auth=True, action="flagging",
                   json={"reason": reason})

    def rating(self, name: str) -> RatingSummary:
        r = self._call("GET", package_path(name) + "/rating")
        return RatingSummary.model_validate(r.json())

    # -- runs ----------------------------------------------------------------------------------
    def submit_run(self, agent: str, task: dict[str, Any], *, timeout_s: float | None = None,
                   idempotency_key: str | None = None) -> Run:
        payload: dict[str, Any] = {"agent": agent, "input": task}
        if timeout_s is not None:
            payload["timeout_s"] = timeout_s
        if idempotency_key is not None:
            payload["idempotency_key"] = idempotency_key
        r = self._call("POST", "/runs", auth=True, action="running an agent", json=payload)
        return Run.model_validate(r.json())

    def run(self, run_id: str, *, wait: float = 0) -> Run:
        """Run `run_id`; with `wait`, the server holds the answer until it is final (<= 60 s)."""
        params = {"wait": wait} if wait else None
        timeout = httpx.Timeout(30.0, connect=5.0, read=wait + 30.0) if wait else None
        r = self._call("GET", f"/runs/{quote(run_id, safe='')}", auth=True, action="reading runs",
                       params=params, **({"timeout": timeout} if timeout else {}))
        return Run.model_validate(r.json())

    def runs(self, *, status: str | None = None, agent: str | None = None, page: int = 1,
             per_page: int = 20) -> Page[Run]:
        params: dict[str, Any] = {"page": page, "per_page": per_page}
        params.update({k: v for k, v in (("status", status), ("agent", agent)) if v})
        r = self._call("GET", "/runs", auth=True, action="listing runs", params=params)
        return Page[Run].model_validate(r.json())

    def cancel_run(self, run_id: str) -> Run:
        r = self._call("POST", f"/runs/{quote(run_id, safe='')}/cancel", auth=True,
                       action="cancelling a run")
        return Run.model_validate(r.json())

    # -- audit ---------------------------------------------------------------------------------
    def audit(self, *, action: str | None = None, object: str | None = None,
              correlation_id: str | None = None, since: str | None = None,
              until: str | None = None, page: int = 1, per_page: int = 50) -> Page[AuditEvent]:
        """Audit events the token may read (its account's, or all for an admin), newest first."""
        params: dict[str, Any] = {"page": page, "per_page": per_page}
        filters = (("action", action), ("object", object), ("correlation_id", correlation_id),
                   ("since", since), ("until", until))
        params.update({k: v for k, v in filters if v})
        r = self._call("GET", "/audit", auth=True, action="reading the audit trail",
                       params=params)
        return Page[AuditEvent].model_validate(r.json())

    def run_events(self, run_id: str, after: int = 0) -> Iterator[RunEvent]:
        """The run's events as they happen (Server-Sent Events), until it is final; resumes
        after event number `after`."""
        headers = self._headers(True, "following a run")
        if after:
            headers["Last-Event-ID"] = str(after)
        url = f"{API}/runs/{quote(run_id, safe='')}/events"
        timeout = httpx.Timeout(30.0, connect=5.0, read=60.0)  # a comment comes every 15 s
        try:
            with self._http.stream("GET", url, headers=headers, timeout=timeout) as response:
                if not response.is_success:
                    response.read()
                    check(response)
                yield from _server_sent_events(response.iter_lines())
        except httpx.TransportError as exc:
            raise ConnectionFailed(self.base_url, str(exc) or type(exc).__name__) from None


def _server_sent_events(lines: Iterator[str]) -> Iterator[RunEvent]:
    """Events of a `text/event-stream` (comments skipped; `data` parsed as JSON)."""
    import json

    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "event" in fields and fields.get("id", "").isdigit():
                try:
                    data = json.loads(fields.get("data", "{}"))
                except ValueError:
                    data = {}
                yield RunEvent(id=int(fields["id"]), kind=fields["event"],
                               data=data if isinstance(data, dict) else {})
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def _collect(name: str, version: str, response: httpx.Response, chunks: Any, max_bytes: int,
             progress: Progress | None, claims: httpx.Headers | None = None) -> Download:
    declared = response.headers.get("content-length")
    total = int(declared) if declared and declared.isdigit() else None
    if total is not None and total > max_bytes:
        raise DownloadTooLarge(name, total, max_bytes)
    digest = hashlib.sha256()
    parts: list[bytes] = []
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > max_bytes:
            raise DownloadTooLarge(name, received, max_bytes)
        digest.update(chunk)
        parts.append(chunk)
        if progress is not None:
            progress(received, total)
    return _download(name, version, response, b"".join(parts), digest.hexdigest(), claims)


def _download(name: str, version: str, response: httpx.Response, data: bytes, sha: str,
              claims: httpx.Headers | None = None) -> Download:
    """`claims`: the headers of the registry's answer when the bytes came from elsewhere."""
    headers = response.headers if claims is None else claims
    return Download(
        name=name, version=version, data=data, sha256=sha,
        claimed_digest=headers.get("x-agentfactory-digest"),
        signature=headers.get("x-agentfactory-signature"),
        key_id=headers.get("x-agentfactory-key-id"),
    )


class AsyncMarketplaceClient(_Base):
    """Asynchronous client for the read paths (detail, search, versions, download).

    Used where many requests run concurrently (benchmarks, resolving several dependencies).
    """

    def __init__(self, base_url: str, token: str | None = None, *,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None,
                 limits: httpx.Limits | None = None, allow_http: bool | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(base_url, token)
        self._allow_http = allow_http  # also decides where a download may be redirected
        if transport is None:
            require_secure_url(self.base_url, allow_http)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                       transport=transport, limits=limits or httpx.Limits(),
                                       headers=request_id_headers(request_id))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get(self, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.get(API + path, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailed(self.base_url, str(exc) or type(exc).__name__) from None
        return check(response)

    async def package(self, name: str) -> PackageDetail:
        return PackageDetail.model_validate((await self._get(package_path(name))).json())

    async def search(self, q: str = "", *, sort: str = "relevance", page: int = 1,
                     per_page: int = 20) -> Page[PackageSummary]:
        r = await self._get("/packages",
                            params={"q": q, "sort": sort, "page": page, "per_page": per_page})
        return Page[PackageSummary].model_validate(r.json())

    async def versions(self, name: str) -> list[Release]:
        data = (await self._get(package_path(name) + "/versions")).json()
        items = data.get("items", data) if isinstance(data, dict) else data
        return [Release.model_validate(item) for item in items]

    async def download(self, name: str, version: str, *, max_bytes: int = DEFAULT_MAX_DOWNLOAD
                       ) -> Download:
        url = f"{API}{package_path(name)}/versions/{quote(version)}/download"
        claims: httpx.Headers | None = None  # the registry's own answer, when it redirects
        try:
            for _hop in range(MAX_REDIRECTS + 1):
                async with self._http.stream("GET", url) as response:
                    if not response.is_redirect:
                        return await _acollect(name, version, response, max_bytes, claims)
                    if claims is None:
                        claims = response.headers
                    url = redirect_target(response, self._allow_http)
            raise ApiError(response.status_code, "", f"the download of {name} {version} was "
                           f"redirected more than {MAX_REDIRECTS} times")
        except httpx.TransportError as exc:
            raise ConnectionFailed(self.base_url, str(exc) or type(exc).__name__) from None


async def _acollect(name: str, version: str, response: httpx.Response, max_bytes: int,
                    claims: httpx.Headers | None) -> Download:
    if not response.is_success:
        await response.aread()
        check(response)
    digest = hashlib.sha256()
    parts: list[bytes] = []
    received = 0
    async for chunk in response.aiter_bytes():
        received += len(chunk)
        if received > max_bytes:
            raise DownloadTooLarge(name, received, max_bytes)
        digest.update(chunk)
        parts.append(chunk)
    return _download(name, version, response, b"".join(parts), digest.hexdigest(), claims)
