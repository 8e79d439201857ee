"""Request bodies of the JSON API, and the few responses that add to the registry's records.

Responses are the registry's own "Public" records wherever they fit the HTTP contract; the models
here only add what the contract needs on top (a publisher's packages, a key's revocation flag).
Bytes travel as base64 in JSON, both ways. Every constraint on a request field is an
`api.fields` rule, so the OpenAPI document declares exactly what the server enforces.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from marketplace.server.api.fields import (
    KEY_ID,
    MAX_REVIEW_BODY,
    MAX_REVIEW_TITLE,
    NAMESPACE,
    PUBLIC_KEY_B64,
    PUBLISHER_NAME,
    SCOPE,
    SIGNATURE_B64,
    SPECIFIER_SET_PATTERN,
    STARS,
    VERSION,
    matching,
)
from registry.schemas import KeyPublic, PackageSummary, PublisherPublic, ReleasePublic
from runs.schemas import RunPublic
from runs.settings import MAX_TIMEOUT_S

# Standard base64 with padding (RFC 4648 section 4), as in the download headers. pydantic's own
# `ser_json_bytes="base64"` emits the URL-safe alphabet, which strict standard decoders refuse.
StdB64 = Annotated[
    bytes, PlainSerializer(lambda b: base64.b64encode(b).decode("ascii"), return_type=str)
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PublisherCreate(_Body):
    name: Annotated[str, PUBLISHER_NAME]
    namespace: Annotated[str, NAMESPACE] | None = None
    email: str | None = Field(default=None, max_length=320)


class PublisherOut(PublisherPublic):
    """A publisher's public page: who they are and their packages, best rated first."""

    packages: list[PackageSummary]


class Registration(BaseModel):
    publisher: PublisherPublic
    token: str


class TokenCreate(_Body):
    scopes: list[Annotated[str, SCOPE]] = Field(
        default_factory=lambda: ["publish", "review"], min_length=1
    )


class TokenCreated(BaseModel):
    id: str
    token: str
    scopes: list[str]


class KeyCreate(_Body):
    """A new key; after the first, with a rotation statement signed by a current key."""

    public_key: Annotated[str, PUBLIC_KEY_B64]
    rotation_signature: Annotated[str, SIGNATURE_B64] | None = None
    signed_by: Annotated[str, KEY_ID] | None = None

    def public_key_bytes(self) -> bytes:
        return base64.b64decode(self.public_key)

    def rotation_signature_bytes(self) -> bytes | None:
        if self.rotation_signature is None:
            return None
        return base64.b64decode(self.rotation_signature)


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
    stars: Annotated[int, STARS] = Field(description="1 to 5")
    title: str = Field(default="", max_length=MAX_REVIEW_TITLE)
    body: str = Field(default="", max_length=MAX_REVIEW_BODY)
    version: Annotated[str, VERSION] | None = Field(
        default=None,
        description="The version reviewed, as published (default: the newest version you "
                    "downloaded, else the latest).",
    )


class ReplyRequest(_Body):
    text: str = Field(min_length=1, max_length=MAX_REVIEW_BODY)


class FlagRequest(_Body):
    reason: str = Field(min_length=1, max_length=1000)


class ReleaseOut(ReleasePublic):
    """A release as the API shows it: the registry's record, signature in standard base64."""

    signature: StdB64

    @classmethod
    def of(cls, release: ReleasePublic) -> ReleaseOut:
        return cls.model_validate(release, from_attributes=True)


# --------------------------------------------------------------------------------------- runs

# A template name (`core.template.NAME_PATTERN`), then optionally a PEP 440 specifier set.
AGENT_NAME_PATTERN = "[a-z0-9][a-z0-9_-]*(?:/[a-z0-9][a-z0-9_-]*)?"
AGENT_SPEC = matching(
    AGENT_NAME_PATTERN + SPECIFIER_SET_PATTERN,
    "an agent is a template name (lowercase letters, digits, - and _, optionally namespace/name)"
    ", optionally followed by a version specifier such as >=1.0,<2",
    300,
)
IDEMPOTENCY_KEY = matching(
    "[A-Za-z0-9._:-]{1,128}", "an idempotency key is 1 to 128 letters, digits or . _ : -", 128
)
RUN_ID_PATTERN = "[A-Za-z0-9_-]{16}"
RUN_ID = matching(RUN_ID_PATTERN, "a run id is 16 URL-safe characters")


class RunCreate(_Body):
    agent: Annotated[str, AGENT_SPEC] = Field(
        description="The agent to run: a template name, optionally with a version specifier."
    )
    input: dict[str, Any] = Field(default_factory=dict, description="The task, a JSON object.")
    timeout_s: float | None = Field(
        default=None, gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False,
        description="Wall-clock limit in seconds (default: the server's).",
    )
    idempotency_key: Annotated[str, IDEMPOTENCY_KEY] | None = Field(
        default=None,
        description="Submitting again with the same key returns the first run, not a new one.",
    )


class RunLinks(BaseModel):
    self: str
    events: str
    cancel: str


class RunOut(RunPublic):
    links: RunLinks

    @classmethod
    def of(cls, run: RunPublic, prefix: str) -> RunOut:
        base = f"{prefix}/runs/{run.id}"
        links = RunLinks(self=base, events=f"{base}/events", cancel=f"{base}/cancel")
        return cls(**run.model_dump(), links=links)


class RunsPage(BaseModel):
    items: list[RunOut]
    total: int
    page: int
    per_page: int
