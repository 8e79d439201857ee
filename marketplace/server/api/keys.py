"""Publisher signing keys: add (the first freely, later ones with a rotation statement signed by
a current key), revoke, and read. Installers read `GET /publishers/{publisher}/keys` to follow
a rotation from the key they pinned to the key a release is signed with.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from marketplace.server.api.deps import Publisher, get_state
from marketplace.server.api.fields import KeyIdPath, PublisherPath
from marketplace.server.api.problems import WRITE_PROBLEMS
from marketplace.server.api.schemas import KeyCreate, KeyOut

router = APIRouter(tags=["keys"])


@router.post("/keys", status_code=201, response_model=KeyOut, responses=WRITE_PROBLEMS)
def add_key(body: KeyCreate, principal: Publisher, request: Request) -> KeyOut:
    key = get_state(request).registry.add_key(
        principal, body.public_key_bytes(), body.rotation_signature_bytes(), body.signed_by
    )
    return KeyOut.of(key)


@router.delete("/keys/{key_id}", response_model=KeyOut, responses=WRITE_PROBLEMS)
def revoke_key(key_id: KeyIdPath, principal: Publisher, request: Request) -> KeyOut:
    return KeyOut.of(get_state(request).registry.revoke_key(principal, key_id))


@router.get("/keys/{key_id}", response_model=KeyOut)
def get_key(key_id: KeyIdPath, request: Request) -> KeyOut:
    return KeyOut.of(get_state(request).registry.key(key_id))


@router.get("/publishers/{publisher}/keys", response_model=list[KeyOut])
def publisher_keys(publisher: PublisherPath, request: Request) -> list[KeyOut]:
    return [KeyOut.of(k) for k in get_state(request).registry.keys(publisher)]
