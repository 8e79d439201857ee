"""Ed25519 signing keys, release signatures and key-rotation statements.

A release signature covers a domain-separated message holding the archive's sha256, the
package's normalized name and its canonical version, so a signature can be moved neither to
other bytes nor to another package or version. Two formats, told apart by length:

- v1 (64 bytes): Ed25519 over `agentfactory-release-v1\n name \n version \n sha256`;
- v2 (96 bytes): the 32-byte sha256 of the package's file record (`registry.archive.file_record`)
  followed by Ed25519 over `agentfactory-release-v2\n name \n version \n sha256 \n record`.
  Whoever holds only (digest, name, version) can still verify it, and an installer can check its
  unpacked files against the record long after the archive is gone. The record travels in front
  of the signature so the registry's storage and API need not change.

Publishers sign v2; the registry still verifies v1 from older clients; installers require v2.
A rotation statement, signed by a current key, names the publisher and the new key's id and
public bytes. A key id is the first 32 hex digits of the sha256 of the raw 32-byte public key.
Private keys are written PEM/PKCS#8 with mode 0600, optionally encrypted with a passphrase.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from packaging.utils import canonicalize_version

from registry.errors import InvalidKey, SignatureMismatch
from registry.names import normalize_name, normalize_part

_RELEASE_DOMAIN = b"agentfactory-release-v1\n"
_RELEASE_DOMAIN_V2 = b"agentfactory-release-v2\n"
SIGNATURE_BYTES = 64
RECORD_BYTES = 32
_ROTATION_DOMAIN = b"agentfactory-key-rotation-v1\n"


def key_id_for(public_bytes: bytes) -> str:
    return hashlib.sha256(public_bytes).hexdigest()[:32]


def release_message(digest: str, name: str, version: str, record: str | None = None) -> bytes:
    """The signed message: v1 without a record digest, v2 with one."""
    body = f"{normalize_name(name)}\n{canonicalize_version(version)}\n{digest.lower()}"
    if record is None:
        return _RELEASE_DOMAIN + body.encode()
    return _RELEASE_DOMAIN_V2 + f"{body}\n{record.lower()}".encode()


def rotation_message(new_public_bytes: bytes, publisher: str) -> bytes:
    body = f"{normalize_part(publisher)}\n{key_id_for(new_public_bytes)}\n{new_public_bytes.hex()}"
    return _ROTATION_DOMAIN + body.encode()


def load_public(public_bytes: bytes) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(public_bytes)
    except ValueError:
        raise InvalidKey("an Ed25519 public key is 32 raw bytes") from None


def _verify(public_bytes: bytes, signature: bytes, message: bytes) -> None:
    try:
        load_public(public_bytes).verify(signature, message)
    except (InvalidSignature, InvalidKey):
        raise SignatureMismatch(key_id_for(public_bytes)) from None


def verify_release(
    public_bytes: bytes, signature: bytes, digest: str, name: str, version: str
) -> str | None:
    """Raise `SignatureMismatch(key_id)` unless `signature` signs this digest, name, version.

    Returns the file record's sha256 a v2 signature vouches for, or None for a v1 signature
    (which vouches for no record). Comparing it with the files is the caller's job.
    """
    if len(signature) == SIGNATURE_BYTES:
        _verify(public_bytes, signature, release_message(digest, name, version))
        return None
    if len(signature) != RECORD_BYTES + SIGNATURE_BYTES:
        raise SignatureMismatch(key_id_for(public_bytes))
    record = signature[:RECORD_BYTES].hex()
    _verify(public_bytes, signature[RECORD_BYTES:], release_message(digest, name, version, record))
    return record


def verify_rotation(
    signer_public: bytes, signature: bytes, new_public_bytes: bytes, publisher: str
) -> None:
    _verify(signer_public, signature, rotation_message(new_public_bytes, publisher))


class SigningKey:
    """A private Ed25519 key with its public bytes and key id."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_bytes = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id_for(self.public_bytes)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def sign_release(
        self, digest: str, name: str, version: str, record: str | None = None
    ) -> bytes:
        """A v2 signature when `record` (the file record's sha256) is given, else v1."""
        if record is None:
            return self.sign(release_message(digest, name, version))
        prefix = bytes.fromhex(record)
        if len(prefix) != RECORD_BYTES:
            raise ValueError(f"a record digest is {RECORD_BYTES} bytes, not {len(prefix)}")
        return prefix + self.sign(release_message(digest, name, version, record))

    def sign_rotation(self, new_public_bytes: bytes, publisher: str) -> bytes:
        return self.sign(rotation_message(new_public_bytes, publisher))

    def save(self, path: Path, passphrase: str | None = None) -> None:
        """Write the key as PEM with mode 0600 (created so, never widened afterwards)."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase.encode())
            if passphrase
            else serialization.NoEncryption()
        )
        pem = self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
            os.write(fd, pem)
        finally:
            os.close(fd)

    @classmethod
    def load(cls, path: Path, passphrase: str | None = None) -> SigningKey:
        try:
            pem = Path(path).read_bytes()
        except OSError as exc:
            raise InvalidKey(f"cannot read {str(path)!r}: {exc.strerror}") from None
        try:
            key = serialization.load_pem_private_key(
                pem, passphrase.encode() if passphrase else None
            )
        except TypeError:
            raise InvalidKey("passphrase mismatch: the key is encrypted, or is not") from None
        except ValueError:
            raise InvalidKey("not a PEM private key, or a wrong passphrase") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidKey("not an Ed25519 key")
        return cls(key)
