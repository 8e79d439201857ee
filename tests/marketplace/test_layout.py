"""The layout shows where code runs: the user's side never imports the server.

Read from the source (every `import` and `from ... import`, at any depth, including the lazy
ones inside functions), so a new import that crosses the line fails here before it ships.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER = ("marketplace.server", "fastapi", "uvicorn", "sqlmodel", "registry.service")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def crossing(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{path.relative_to(ROOT)} imports {name}"
        for path in paths
        for name in imported_modules(path)
        if any(name == bad or name.startswith(bad + ".") for bad in forbidden)
    )


def test_the_client_package_never_imports_the_server() -> None:
    client = sorted((ROOT / "marketplace" / "client").rglob("*.py"))
    assert len(client) > 5
    assert crossing(client, SERVER) == []


def test_only_serve_imports_the_server_from_the_command_line() -> None:
    commands = [p for p in sorted((ROOT / "cli").glob("*.py")) if p.name != "serve.py"]
    assert crossing(commands, SERVER) == []
    assert crossing([ROOT / "cli" / "serve.py"], ("marketplace.server",)) != []


def test_lower_layers_never_import_the_command_line_or_the_marketplace() -> None:
    lower = [p for part in ("core", "registry", "sandbox") for p in (ROOT / part).rglob("*.py")]
    assert crossing(lower, ("cli", "marketplace")) == []
