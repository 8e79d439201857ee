"""Request bodies of the JSON API, and the few responses that add to the registry's records.

Responses are the registry's own "Public" records wherever they fit the HTTP contract; the models
here only add what the contract needs on top (a publisher's packages, a key's revocation flag).
Bytes travel as base64 in JSON, both ways.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated

from pydantic import Base64Bytes, BaseModel, ConfigDict, Field, PlainSerializer

from registry.schemas import KeyPublic, PackageSummary, PublisherPublic, ReleasePublic

# Standard base64 with padding (RFC 4648 section 4), as in the download headers. pydantic's own
# `ser_json_bytes="base64"` emits the URL-safe alphabet, which strict standard decoders refuse.
StdB64 = Annotated[
    bytes, PlainSerializer(lambda b: base64.b64encode(b).decode("ascii"), return_type=str)
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PublisherCreate(_Body):
    name: str = Field(min_length=1, max_length=64)
    namespace: str | None = Field(default=None, min_length=1, max_length=64)
    email: str | None = Field(default=None, max_length=320)


class PublisherOut(PublisherPublic):
    """A publisher's public page: who they are and their packages, best rated first."""

    packages: list[PackageSummary]


class Registration(BaseModel):
    publisher: PublisherPublic
    token: str


class TokenCreate(_Body):
    scopes: list[str] = Field(default_factory=lambda: ["publish", "review"], min_length=1)


class TokenCreated(BaseModel):
    id: str
    token: str
    scopes: list[str]


class KeyCreate(_Body):
    public_key: Base64Bytes
    rotation_signature: Base64Bytes | None = None
    signed_by: str | None = Field(default=None, max_length=32)


class KeyOut(BaseModel):
    """A publisher key as installers see it (they walk `signed_by` chains to accept rotations)."""

    key_id: str
    publisher: str
    public_key: StdB64
    created_at: datetime
    revoked: bool
    revoked_at: datetime | None
    signed_by: str | None
    rotation_signature: StdB64 | None = None

    @classmethod
    def of(cls, key: KeyPublic) -> KeyOut:
        return cls.model_validate(key, from_attributes=True)  # `revoked` is KeyPublic's property


class YankRequest(_Body):
    reason: str = Field(min_length=1, max_length=1000)


class ReviewUpsert(_Body):
    stars: int = Field(ge=1, le=5, description="1 to 5")
    title: str = Field(default="", max_length=200)
    body: str = Field(default="", max_length=10_000)
    version: str | None = Field(default=None, max_length=64)


class ReplyRequest(_Body):
    text: str = Field(min_length=1, max_length=10_000)


class FlagRequest(_Body):
    reason: str = Field(min_length=1, max_length=1000)


class ReleaseOut(ReleasePublic):
    """A release as the API shows it: the registry's record, signature in standard base64."""

    signature: StdB64

    @classmethod
    def of(cls, release: ReleasePublic) -> ReleaseOut:
        return cls.model_validate(release, from_attributes=True)
