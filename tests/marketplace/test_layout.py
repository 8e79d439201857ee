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


# The commands that run where the server's data lives: the server, its run workers, operator tools.
SERVER_SIDE_COMMANDS = {"serve.py", "worker.py", "admin.py"}


def test_only_server_side_commands_import_the_server() -> None:
    cli = sorted((ROOT / "cli").glob("*.py"))
    user_side = [p for p in cli if p.name not in SERVER_SIDE_COMMANDS]
    assert crossing(user_side, SERVER) == []
    server_side = [p for p in cli if p.name in SERVER_SIDE_COMMANDS]
    assert len(server_side) == len(SERVER_SIDE_COMMANDS)
    assert all(crossing([p], ("marketplace.server",)) for p in server_side)


def test_lower_layers_never_import_the_command_line_or_the_marketplace() -> None:
    lower = [p for part in ("core", "registry", "sandbox") for p in (ROOT / part).rglob("*.py")]
    assert crossing(lower, ("cli", "marketplace")) == []
