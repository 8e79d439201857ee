"""Settings shared by the whole suite.

The sandbox's compiled runner is cached on disk; every test, and every server a test starts (it
inherits the environment), uses this one cache, so a test session compiles the runner at most
once, and a later session on the same checkout not at all.
"""

from __future__ import annotations

import os
from pathlib import Path

SANDBOX_CACHE = Path(__file__).resolve().parent.parent / ".pytest_cache" / "agentfactory"

os.environ.setdefault("AGENTFACTORY_CACHE", str(SANDBOX_CACHE))
