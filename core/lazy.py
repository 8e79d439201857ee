"""Lazy re-exports for package `__init__` modules (PEP 562).

A package's public names stay importable from the package itself while its heavy submodules
(pydantic, SQLAlchemy, watchdog) load only when one of their names is first used. This keeps
`agentfactory --help` and the client commands from importing the server stack.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` resolving `name` from the submodule `exports[name]`."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
