"""Content hashes of resolved templates.

The hash is the sha256 hex digest of the template's canonical JSON: keys sorted, no insignificant
whitespace, UTF-8, with `metadata["hash"]` itself left out (it cannot hash itself). Two resolved
templates with the same content therefore have the same hash on every machine, whatever the order
of keys in their source files.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(document: Any) -> bytes:
    """Serialize `document` deterministically (sorted keys, compact separators, UTF-8)."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def content_hash(document: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of a template document, ignoring `metadata.hash`."""
    metadata = document.get("metadata")
    if isinstance(metadata, dict) and "hash" in metadata:
        document = {**document, "metadata": {k: v for k, v in metadata.items() if k != "hash"}}
    return hashlib.sha256(canonical_json(document)).hexdigest()
