"""The public release log (`registry.log_store`): its key, signed heads, proofs and entries.

Every accepted release is a leaf of an RFC 6962 Merkle tree (`registry.translog`); these
read-only endpoints let installers and auditors check that the registry never rewrites it:

- `GET /log/key`: the registry's Ed25519 key that signs the tree heads (clients pin it);
- `GET /log/head`: the latest signed tree head;
- `GET /log/proof/inclusion?name=&version=`: a release's leaf, index and proof in the latest
  tree, with that tree's signed head (what the installer checks for every download);
- `GET /log/proof/consistency?from=&to=`: the proof that the tree of `from` leaves is a prefix
  of the tree of `to` (default: the latest), with the signed head of `to`;
- `GET /log/entries?start=&limit=`: at most 1,000 entries from `start`, with the head they
  belong to, for auditors that recompute the whole tree.

Hashes are lowercase hex, signatures and keys standard base64. A size the log never had, or a
`from` past `to`, is a 404 problem (`LogProofUnavailable`): no such proof exists.
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from marketplace.server.api.deps import get_state
from marketplace.server.api.fields import FULL_NAME, VERSION
from registry.log_store import MAX_ENTRIES_PAGE, LoggedEntry
from registry.translog import MAX_TREE_SIZE, SignedTreeHead

router = APIRouter(prefix="/log", tags=["log"])

TreeSize = Annotated[int, Field(ge=0, le=MAX_TREE_SIZE)]


class LogKeyOut(BaseModel):
    key_id: str = Field(description="first 32 hex digits of the sha256 of the raw public key")
    public_key: str = Field(description="the raw 32-byte Ed25519 public key, standard base64")
    algorithm: str = "ed25519"


class TreeHeadOut(BaseModel):
    """A signed tree head: Ed25519 over
    `agentfactory-log-head-v1\\n{tree_size}\\n{root_hash}\\n{timestamp_ms}`."""

    tree_size: TreeSize
    root_hash: str = Field(description="sha256 Merkle root, hex")
    timestamp_ms: int = Field(ge=0)
    key_id: str
    signature: str = Field(description="Ed25519 signature, standard base64")

    @classmethod
    def of(cls, signed: SignedTreeHead) -> TreeHeadOut:
        head = signed.head
        return cls(tree_size=head.size, root_hash=head.root.hex(), timestamp_ms=head.timestamp_ms,
                   key_id=signed.key_id, signature=base64.b64encode(signed.signature).decode())


class LogEntryOut(BaseModel):
    index: TreeSize
    name: str = Field(description="normalized package name")
    version: str = Field(description="canonical version")
    digest: str = Field(description="sha256 of the archive, hex")
    key_id: str = Field(description="the key that signed the release")
    record: str | None = Field(description="sha256 of the file record a v2 signature covers")
    leaf_hash: str = Field(description="SHA-256(0x00 || entry), hex")

    @classmethod
    def of(cls, logged: LoggedEntry) -> LogEntryOut:
        entry = logged.entry
        return cls(index=logged.index, name=entry.name, version=entry.version,
                   digest=entry.digest, key_id=entry.key_id, record=entry.record,
                   leaf_hash=logged.leaf_hash.hex())


class InclusionOut(BaseModel):
    entry: LogEntryOut
    proof: list[str] = Field(description="sibling hashes, leaf's sibling first (RFC 6962)")
    head: TreeHeadOut


class ConsistencyOut(BaseModel):
    from_size: TreeSize
    to_size: TreeSize
    proof: list[str] = Field(description="RFC 6962 consistency proof, hex")
    head: TreeHeadOut = Field(description="the signed head of the tree of `to_size` leaves")


class EntriesOut(BaseModel):
    start: TreeSize
    entries: list[LogEntryOut]
    head: TreeHeadOut = Field(description="the head whose tree these entries belong to")


@router.get("/key", response_model=LogKeyOut)
def log_key(request: Request) -> LogKeyOut:
    key = get_state(request).registry.log_key()
    return LogKeyOut(key_id=key.key_id, public_key=base64.b64encode(key.public_bytes).decode())


@router.get("/head", response_model=TreeHeadOut)
def log_head(request: Request) -> TreeHeadOut:
    return TreeHeadOut.of(get_state(request).registry.log_head())


@router.get("/proof/inclusion", response_model=InclusionOut)
def inclusion(
    request: Request,
    name: Annotated[str, FULL_NAME, Query(description="namespace/name of the package")],
    version: Annotated[str, VERSION, Query(description="a PEP 440 version of it")],
) -> InclusionOut:
    proof = get_state(request).registry.log_inclusion(name, version)
    return InclusionOut(entry=LogEntryOut.of(proof.logged), proof=[p.hex() for p in proof.proof],
                        head=TreeHeadOut.of(proof.head))


@router.get("/proof/consistency", response_model=ConsistencyOut)
def consistency(
    request: Request,
    from_size: Annotated[int, Query(alias="from", ge=1, le=MAX_TREE_SIZE)],
    to_size: Annotated[int | None, Query(alias="to", ge=1, le=MAX_TREE_SIZE)] = None,
) -> ConsistencyOut:
    proof = get_state(request).registry.log_consistency(from_size, to_size)
    return ConsistencyOut(from_size=proof.old, to_size=proof.head.head.size,
                          proof=[p.hex() for p in proof.proof], head=TreeHeadOut.of(proof.head))


@router.get("/entries", response_model=EntriesOut)
def entries(
    request: Request,
    start: Annotated[int, Query(ge=0, le=MAX_TREE_SIZE)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_ENTRIES_PAGE)] = 100,
) -> EntriesOut:
    page = get_state(request).registry.log_entries(start, limit)
    return EntriesOut(start=page.start, entries=[LogEntryOut.of(e) for e in page.entries],
                      head=TreeHeadOut.of(page.head))
