"""Publisher keys: trust on first use, and rotations that chain back to the pinned key.

Invariants: a key is used only if it hashes to its id and belongs to the publisher; the first key
seen for a publisher is pinned (in memory here; the installer writes `keys.json` only when the
whole install succeeds); a later, different key is accepted only if each rotation statement from
it back to the pinned key verifies (`registry.signing.verify_rotation`), else `KeyChanged`.
"""

from __future__ import annotations

import base64
import binascii

from marketplace.client.errors import KeyChanged, UntrustedPackage
from marketplace.client.http import MarketplaceClient
from marketplace.client.lockfile import KeyPin, PinStore, now
from marketplace.client.records import KeyInfo
from registry.errors import RevokedKey, SignatureMismatch
from registry.signing import key_id_for, verify_rotation


def b64decode(value: str, what: str, name: str) -> bytes:
    """Decode standard or URL-safe base64 (JSON bodies use the latter, headers the former)."""
    try:
        return base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise UntrustedPackage(name, f"{what} is not valid base64") from None


def trusted_key(client: MarketplaceClient, publisher: str, key_id: str, pins: PinStore) -> KeyPin:
    """The pin to verify with, updating `pins` (in memory) on first use or a valid rotation."""
    pin = pins.publishers.get(publisher)
    if pin is not None and pin.key_id == key_id:
        return pin
    keys = {k.key_id: k for k in client.publisher_keys(publisher)}
    record = keys.get(key_id)
    if record is None:
        raise UntrustedPackage(publisher, f"key {key_id} is not one of the publisher's keys")
    public = _public_of(record, publisher)
    if record.revoked:
        raise RevokedKey(key_id)
    fresh = KeyPin(key_id=key_id, public_key=base64.b64encode(public).decode(),
                   pinned_at=now())
    if pin is None:
        pins.publishers[publisher] = fresh
        return fresh
    _walk_rotation(publisher, pin, keys, key_id, public)
    rotated = fresh.model_copy(update={"rotated_from": [*pin.rotated_from, pin.key_id]})
    pins.publishers[publisher] = rotated
    return rotated


def _public_of(record: KeyInfo, publisher: str) -> bytes:
    public = b64decode(record.public_key, f"key {record.key_id}", publisher)
    if key_id_for(public) != record.key_id:
        raise UntrustedPackage(publisher, f"key {record.key_id} does not hash to its id")
    if record.publisher and record.publisher != publisher:
        owner = record.publisher
        raise UntrustedPackage(publisher, f"key {record.key_id} belongs to {owner!r}")
    return public


def _walk_rotation(publisher: str, pin: KeyPin, keys: dict[str, KeyInfo],
                   key_id: str, public: bytes) -> None:
    """Verify each rotation statement from `key_id` back to the pinned key."""
    current = keys[key_id]
    seen = {key_id}
    while True:
        signed_by, statement = current.signed_by, current.rotation_signature
        if not signed_by or not statement or signed_by in seen:
            raise KeyChanged(publisher, pin.key_id, key_id)
        seen.add(signed_by)
        if signed_by == pin.key_id:
            signer_public = b64decode(pin.public_key, "the pinned key", publisher)
        elif signed_by in keys:
            signer_public = _public_of(keys[signed_by], publisher)
        else:
            raise KeyChanged(publisher, pin.key_id, key_id)
        try:
            verify_rotation(signer_public, b64decode(statement, "a rotation statement", publisher),
                            public, publisher)
        except SignatureMismatch:
            raise KeyChanged(publisher, pin.key_id, key_id) from None
        if signed_by == pin.key_id:
            return
        current, public = keys[signed_by], signer_public

