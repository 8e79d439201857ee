"""API keys: found in the environment or `llm`'s key store, and kept out of every message.

Invariants: a key is read at the moment a call needs it and handed to the provider client only;
it is never logged, stored, put in an audit event or an error. Text that came back from a
provider (an error body may echo the request, key included) goes through `scrub` before it is
put in an error: every key this process resolved is replaced, and so is anything shaped like a
bearer token or an `sk-` key.
"""

from __future__ import annotations

import os
import re
import threading

REDACTED = "[redacted]"
MAX_DETAIL = 300  # characters of a provider's error text kept in an error message

_SHAPES = re.compile(
    r"(?i)(bearer\s+|api[_-]?key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._~+/=-]{8,}"
    r"|\bsk-[A-Za-z0-9_-]{8,}"
)
_known: set[str] = set()
_lock = threading.Lock()


def remember(key: str | None) -> str | None:
    """Note `key` as a secret `scrub` must remove; return it."""
    if key and len(key) >= 4:
        with _lock:
            _known.add(key)
    return key


def from_environment(variable: str) -> str | None:
    """The key in environment variable `variable`, remembered as a secret."""
    return remember(os.environ.get(variable) or None)


def from_key_store(name: str) -> str | None:
    """The key stored as `name` by `llm keys set NAME`, remembered as a secret."""
    import llm

    return remember(llm.get_key(alias=name))


def scrub(text: str, extra: tuple[str, ...] = ()) -> str:
    """`text` without any remembered key, any of `extra`, or anything shaped like a key; cut to
    `MAX_DETAIL` characters on one line."""
    with _lock:
        secrets = sorted(_known | {s for s in extra if s and len(s) >= 4}, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    text = _SHAPES.sub(lambda m: (m.group(1) or "") + REDACTED, text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"
