"""Who may sign a package: trust on first use per namespace, rotations that chain back to the pin.

The registry's JSON is unsigned, so it decides nothing once a namespace is pinned. Invariants:

- a pin belongs to a package *namespace* (`keys.json` → `namespaces`) and records the publisher
  that signs there and its key; the first release installed from a namespace pins both (in memory
  here; the installer writes `keys.json` only when the whole install succeeds);
- once pinned, the publisher named by the registry must be the pinned one: another name, or
  none, is `PublisherChanged` (a `KeyChanged`), whatever keys that other publisher holds;
- the signing key must be the pinned key, or a key whose rotation statements, each signed by its
  predecessor, lead back to it (`registry.signing.verify_rotation`), else `KeyChanged`; a key is
  used only if it hashes to its id and the registry lists it under the pinned publisher;
- a key its owner revoked is never trusted again, pinned or not: every check asks the registry
  for the publisher's keys, remembers each revoked one in `keys.json` → `revoked`, and refuses a
  remembered key even when a registry later says it is fine (`RevokedKey`). A rotation chain may
  pass through a revoked key (owners rotate, then revoke the old key); the signing key may not.
"""

from __future__ import annotations

import base64
import binascii

from marketplace.client.errors import KeyChanged, PublisherChanged, UntrustedPackage
from marketplace.client.http import MarketplaceClient
from marketplace.client.lockfile import KeyPin, PinStore, now
from marketplace.client.records import KeyInfo
from registry.errors import RevokedKey, SignatureMismatch
from registry.names import normalize_name
from registry.signing import key_id_for, verify_rotation


def b64decode(value: str, what: str, name: str) -> bytes:
    """Decode standard or URL-safe base64 (JSON bodies use the latter, headers the former)."""
    try:
        return base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise UntrustedPackage(name, f"{what} is not valid base64") from None


def namespace_of(name: str) -> str:
    return normalize_name(name).split("/")[0]


def trusted_key(
    client: MarketplaceClient, package: str, claimed: str, key_id: str, pins: PinStore
) -> KeyPin:
    """The pin that `package`'s release signed by `key_id` must verify with.

    `claimed` is the publisher the registry names for the package; it is believed only when the
    namespace has no pin yet. `pins` is updated in memory: a first pin, a valid rotation, and
    every revocation the registry reports.
    """
    namespace = namespace_of(package)
    pin = pins.namespaces.get(namespace)
    if pin is not None and pin.publisher and claimed != pin.publisher:
        raise PublisherChanged(package, pin.publisher, claimed, pin.key_id)
    if not claimed:
        raise UntrustedPackage(package, "the registry names no publisher for it")
    keys = publisher_keys(client, claimed, pins)
    if key_id in pins.revoked:
        raise RevokedKey(key_id)
    if pin is not None and pin.key_id == key_id:
        pins.namespaces[namespace] = pin
        return pin
    record = keys.get(key_id)
    if record is None:
        if pin is not None:
            raise KeyChanged(claimed, pin.key_id, key_id)
        raise UntrustedPackage(package, f"key {key_id} is not one of {claimed!r}'s keys")
    public = _public_of(record, claimed)
    fresh = KeyPin(key_id=key_id, public_key=base64.b64encode(public).decode(),
                   pinned_at=now(), publisher=claimed)
    if pin is None:
        pins.namespaces[namespace] = fresh
        return fresh
    _walk_rotation(claimed, pin, keys, key_id, public)
    rotated = fresh.model_copy(update={"rotated_from": [*pin.rotated_from, pin.key_id]})
    pins.namespaces[namespace] = rotated
    return rotated


def publisher_keys(
    client: MarketplaceClient, publisher: str, pins: PinStore
) -> dict[str, KeyInfo]:
    """The publisher's keys by id, remembering in `pins` every key the registry says is revoked."""
    keys = {k.key_id: k for k in client.publisher_keys(publisher)}
    for key in keys.values():
        if key.revoked and key.publisher in ("", publisher):
            pins.revoked[key.key_id] = publisher
    return keys


def check_not_revoked(client: MarketplaceClient, publisher: str, key_id: str,
                      pins: PinStore) -> None:
    """Raise `RevokedKey` if the owner revoked `key_id`, now or at any earlier check."""
    publisher_keys(client, publisher, pins)
    if key_id in pins.revoked:
        raise RevokedKey(key_id)


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
