"""Packages: publish (multipart upload), search, detail, versions, resolve, download, yank.

Order of checks on publish: token and scope, then the per-token write budget, then the body
(capped by the body-limit middleware while it streams), then the registry's own pipeline (parse,
validate, ownership, signature, dedupe, store, index) inside one transaction. The body is read
only after the caller is known, so anonymous clients cannot make the server read uploads.

Read endpoints that users hit hardest (detail, versions, rating) are answered from encoded bytes
in `ResponseCache`; every write to a package invalidates its entries (see `api.cache`).

A download is counted, then answered with the archive bytes (re-hashed by the blob store on the
way), or, with `AGENTFACTORY_BLOB_REDIRECT` and a store that signs URLs (S3), with 307 to a
short-lived pre-signed URL of the blob: the bytes then never pass through this process, and the
client checks size and sha256 as it always does.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from contextlib import nullcontext
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from marketplace.server.api.deps import (
    ClientAddress,
    Publisher,
    PublishWriter,
    get_state,
    optional_principal,
)
from marketplace.server.api.fields import (
    KEY_ID,
    KEY_ID_PATTERN,
    SIGNATURE_B64,
    SIGNATURE_B64_PATTERN,
    SORT,
    SPECIFIER_SET,
    NamePath,
    NamespacePath,
    VersionPath,
)
from marketplace.server.api.problems import WRITE_PROBLEMS
from marketplace.server.api.schemas import ReleaseOut, YankRequest
from marketplace.server.client_address import rate_key
from marketplace.server.ratelimit import account_key
from registry.blobs import SignedUrls
from registry.errors import AuthenticationError
from registry.names import normalize_name
from registry.schemas import PackageDetail, Principal, ReleasePublic, SearchPage

router = APIRouter(prefix="/packages", tags=["packages"])

JSON = "application/json"
# Past this, offsets overflow SQLite's 64-bit integers (a 500): no listing is that long anyway.
MAX_PAGE = 100_000

_UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["archive", "signature", "key_id"],
                    "properties": {
                        "archive": {"type": "string", "format": "binary"},
                        "signature": {
                            "type": "string",
                            "pattern": f"^{SIGNATURE_B64_PATTERN}$",
                            "description": "the Ed25519 signature, standard padded base64",
                        },
                        "key_id": {"type": "string", "pattern": f"^{KEY_ID_PATTERN}$"},
                    },
                }
            }
        },
    }
}


def _missing(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


async def _read_upload(request: Request) -> tuple[bytes, bytes, str]:
    form = await request.form(max_files=1, max_fields=4)
    try:
        archive = form.get("archive")
        if not isinstance(archive, UploadFile):
            raise _missing("archive", "an archive file is required")
        signature_b64 = form.get("signature")
        if not isinstance(signature_b64, str) or not signature_b64:
            raise _missing("signature", "a signature is required: unsigned uploads are refused")
        if not SIGNATURE_B64.test(signature_b64):
            raise _missing("signature", SIGNATURE_B64.message)
        key_id = form.get("key_id")
        if not isinstance(key_id, str) or not key_id:
            raise _missing("key_id", "the id of the signing key is required")
        if not KEY_ID.test(key_id):
            raise _missing("key_id", KEY_ID.message)
        return await archive.read(), base64.b64decode(signature_b64), key_id
    finally:
        await form.close()


@router.post(
    "", status_code=201, response_model=ReleaseOut, openapi_extra=_UPLOAD_DOC,
    responses=WRITE_PROBLEMS,
)
async def publish(request: Request, principal: PublishWriter) -> ReleaseOut:
    state = get_state(request)
    # Admitted to vetting (or refused with 429) on the event loop, before the body is read.
    gate = state.vetting_gate
    async with gate.admit(account_key(principal)) if gate is not None else nullcontext():
        archive, signature, key_id = await _read_upload(request)
        release: ReleasePublic = await run_in_threadpool(
            state.registry.publish, principal, archive, signature, key_id
        )
    state.cache.invalidate(normalize_name(release.name))
    state.metrics.publishes.inc()
    return ReleaseOut.of(release)


@router.get("", response_model=SearchPage)
def search(
    request: Request,
    q: str = "",
    sort: Annotated[str, SORT, Query()] = "relevance",
    capability: str | None = None,
    tool: str | None = None,
    publisher: str | None = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SearchPage:
    result: SearchPage = get_state(request).registry.search(
        q, sort=sort, page=page, per_page=per_page, capability=capability, tool=tool,
        publisher=publisher,
    )
    return result


async def cached_json(
    request: Request, kind: str, name: str, compute: Callable[[str], BaseModel | list[Any]]
) -> Response:
    """Answer from the cache, or compute in a worker thread and cache unless a write raced."""
    state = get_state(request)
    key = normalize_name(name)
    body = await state.cache.lookup(kind, key, request.scope)
    if body is None:
        generation = state.cache.generation(key)
        record = await run_in_threadpool(compute, name)
        body = _encode(record)
        state.cache.put(kind, key, body, generation)
    return Response(body, media_type=JSON)


_RELEASES = TypeAdapter(list[ReleaseOut])


def _encode(record: BaseModel | list[Any]) -> bytes:
    if isinstance(record, BaseModel):
        return record.__pydantic_serializer__.to_json(record)
    return _RELEASES.dump_json([ReleaseOut.of(r) for r in record])


@router.get("/{namespace}/{name}", response_model=PackageDetail)
async def detail(namespace: NamespacePath, name: NamePath, request: Request) -> Response:
    registry = get_state(request).registry
    return await cached_json(request, "detail", f"{namespace}/{name}", registry.package)


@router.get("/{namespace}/{name}/versions", response_model=list[ReleaseOut])
async def versions(namespace: NamespacePath, name: NamePath, request: Request) -> Response:
    registry = get_state(request).registry
    return await cached_json(request, "versions", f"{namespace}/{name}", registry.releases)


@router.get("/{namespace}/{name}/resolve", response_model=ReleaseOut)
def resolve(
    namespace: NamespacePath,
    name: NamePath,
    request: Request,
    spec: Annotated[str, SPECIFIER_SET, Query(description="PEP 440 specifiers, e.g. >=1.0,<2")]
    = "",
    prereleases: bool = False,
) -> ReleaseOut:
    release: ReleasePublic = get_state(request).registry.resolve(
        f"{namespace}/{name}", spec, prereleases=prereleases
    )
    return ReleaseOut.of(release)


@router.get(
    "/{namespace}/{name}/versions/{version}/download",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {}}, "description": "the archive bytes"},
        307: {"description": "the archive at a short-lived pre-signed URL (blob redirects on)"},
    },
)
def download(
    namespace: NamespacePath,
    name: NamePath,
    version: VersionPath,
    request: Request,
    address: ClientAddress,
    install: bool = False,
) -> Response:
    state = get_state(request)
    blobs = state.registry.blobs
    signer: SignedUrls | None = None
    if state.settings.blob_redirect and isinstance(blobs, SignedUrls):
        signer = blobs
    release, data = state.registry.download(
        f"{namespace}/{name}", version, client=_downloader(request, address),
        read=signer is None,
    )
    state.cache.invalidate(normalize_name(release.name))  # the download count moved
    state.metrics.downloads.inc()
    if install:
        state.metrics.installs.inc()
    filename = f"{release.name.replace('/', '-')}-{release.version}.zip"
    headers = {
        "X-Agentfactory-Digest": release.digest,
        "X-Agentfactory-Signature": base64.b64encode(release.signature).decode(),
        "X-Agentfactory-Key-Id": release.key_id,
    }
    if signer is not None:
        # The signature headers stay on the redirect: the client takes them from this answer.
        location = signer.signed_url(release.digest, state.settings.blob_redirect_ttl_s, filename)
        headers.update({"Location": location, "Cache-Control": "no-store"})
        return Response(status_code=307, headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(data, media_type="application/zip", headers=headers)


def _downloader(request: Request, address: str) -> str:
    """Who counts as one downloader (once per release per day, see `Registry.download`): the
    signed-in account, else the client's address (an IPv6 one by its /64). A bad token only
    loses the caller its account identity; the download itself needs none."""
    try:
        principal = optional_principal(request)
    except AuthenticationError:
        principal = None
    if principal is not None:
        return f"publisher:{principal.publisher_id}"
    return f"address:{rate_key(address)}"


@router.post(
    "/{namespace}/{name}/versions/{version}/yank", response_model=ReleaseOut,
    responses=WRITE_PROBLEMS,
)
def yank(
    namespace: NamespacePath,
    name: NamePath,
    version: VersionPath,
    body: YankRequest,
    principal: Publisher,
    request: Request,
) -> ReleaseOut:
    return _set_yank(request, principal, f"{namespace}/{name}", version, body.reason)


@router.delete(
    "/{namespace}/{name}/versions/{version}/yank", response_model=ReleaseOut,
    responses=WRITE_PROBLEMS,
)
def unyank(
    namespace: NamespacePath,
    name: NamePath,
    version: VersionPath,
    principal: Publisher,
    request: Request,
) -> ReleaseOut:
    return _set_yank(request, principal, f"{namespace}/{name}", version, None)


def _set_yank(
    request: Request, principal: Principal, full: str, version: str, reason: str | None
) -> ReleaseOut:
    state = get_state(request)
    try:
        if reason is None:
            return ReleaseOut.of(state.registry.unyank(principal, full, version))
        return ReleaseOut.of(state.registry.yank(principal, full, version, reason))
    finally:
        state.cache.invalidate(normalize_name(full))
