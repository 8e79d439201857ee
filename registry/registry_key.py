"""The registry's own Ed25519 key: what signs the revocation list and admin revocations (and
whatever else the registry itself vouches for, such as a release log's tree heads).

Invariants: the key lives at `<home>/registry.key` (`KEY_NAME`), PEM/PKCS#8, mode 0600 from its
first byte; it is created once, on first use, and never replaced: a new file is written aside
and linked into place without overwriting, so two processes starting together end up with the
same key (the loser reads the winner's). Its public half is published with every signed
document, and clients pin it on first sight.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from registry.signing import SigningKey

KEY_NAME = "registry.key"


def key_path(home: Path) -> Path:
    return Path(home) / KEY_NAME


def load_or_create(home: Path) -> SigningKey:
    """The key of the registry whose data directory is `home`, created if it has none yet."""
    path = key_path(home)
    if path.exists():
        return SigningKey.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{KEY_NAME}.")
    os.close(fd)
    try:
        SigningKey.generate().save(Path(tmp))
        # Fails if another process linked its key first: that one is kept.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return SigningKey.load(path)
