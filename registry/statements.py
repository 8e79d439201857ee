"""Signed retirement statements: the bytes a revocation and the revocation list are signed over.

Kept apart from `registry.retire` (which needs the database models) so that clients verify with
nothing heavier than `cryptography` and pydantic. Every message is domain-separated, so a
signature made for one purpose (a release, a key rotation, a revocation, a list) can never be
replayed as another. JSON is canonical: keys sorted, no spaces, UTF-8.
"""

from __future__ import annotations

import json

from cryptography.exceptions import InvalidSignature

from registry.errors import RegistryError, SignatureMismatch
from registry.names import normalize_name
from registry.schemas import RevocationList
from registry.signing import SigningKey, key_id_for, load_public

REVOCATION_DOMAIN = b"agentfactory-revocation-v1\n"
LIST_DOMAIN = b"agentfactory-revocation-list-v1\n"


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def statement_bytes(name: str, version: str, digest: str, reason: str) -> bytes:
    """The revocation statement a signer signs (after `REVOCATION_DOMAIN`)."""
    return canonical_json({
        "type": "agentfactory-revocation/v1", "name": normalize_name(name),
        "version": version, "digest": digest.lower(), "reason": reason,
    }).encode()


def sign_statement(key: SigningKey, statement: bytes) -> bytes:
    return key.sign(REVOCATION_DOMAIN + statement)


def _verify(public_key: bytes, signature: bytes, message: bytes) -> None:
    try:
        load_public(public_key).verify(signature, message)
    except (InvalidSignature, RegistryError):
        raise SignatureMismatch(key_id_for(public_key)) from None


def verify_statement(public_key: bytes, signature: bytes, statement: bytes) -> None:
    """`SignatureMismatch(key_id)` unless `signature` signs `statement` with `public_key`."""
    _verify(public_key, signature, REVOCATION_DOMAIN + statement)


def list_bytes(listing: RevocationList) -> bytes:
    """The canonical JSON of a revocation list: what the registry's key signs."""
    return canonical_json(listing.model_dump(mode="json")).encode()


def verify_list(public_key: bytes, signature: bytes, payload: bytes) -> None:
    """`SignatureMismatch(key_id)` unless `signature` signs the list `payload`."""
    _verify(public_key, signature, LIST_DOMAIN + payload)
