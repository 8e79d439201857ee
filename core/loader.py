"""Reading template documents from files and mappings.

Every failure becomes a `TemplateValidationError(source, [(field_path, message), ...])` whose
message names the file and the field path in the document (`tools[2]: ...`, `model.name: ...`);
nothing here lets a `json`, `zstandard` or `pydantic` exception escape to the user.

Accepted files: `NAME.json` (UTF-8 JSON) and `NAME.json.zst` (the same, zstd-compressed).

Importing this module imports neither pydantic nor zstandard: listing template files
(`template_files`) is all a run served from the disk cache needs, and those two imports cost it
more than the rest of its start-up. They are imported by the functions that parse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import TemplateValidationError

if TYPE_CHECKING:
    from core.template import AgentTemplate

SUFFIXES = (".json.zst", ".json")

# Refuse to inflate absurd documents: a template is a few kilobytes.
MAX_DECOMPRESSED_BYTES = 16 * 1024 * 1024


def is_template_file(path: Path) -> bool:
    """True for `*.json` and `*.json.zst` files that are not hidden or editor temp files."""
    name = path.name
    return not name.startswith(".") and name.endswith(SUFFIXES)


def field_path(loc: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as `a.b[2].c`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_template(data: Mapping[str, Any], source: str) -> AgentTemplate:
    """Validate one template document; raise `TemplateValidationError` naming `source`."""
    if not isinstance(data, Mapping):
        raise TemplateValidationError(
            source, [("", f"a template must be a JSON object, not {type(data).__name__}")]
        )
    from pydantic import ValidationError

    from core.template import AgentTemplate

    try:
        return AgentTemplate.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            message = str(err["msg"]).removeprefix("Value error, ")
            errors.append((field_path(tuple(err["loc"])), message))
        raise TemplateValidationError(source, errors) from None


def read_document(path: Path) -> Any:
    """Read and decode the JSON document in `path` (`.json` or `.json.zst`)."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TemplateValidationError(source, [("", f"cannot read file: {exc.strerror}")]) from None
    if path.name.endswith(".zst"):
        import zstandard

        try:
            raw = zstandard.ZstdDecompressor().decompress(
                raw, max_output_size=MAX_DECOMPRESSED_BYTES
            )
        except zstandard.ZstdError as exc:
            raise TemplateValidationError(source, [("", f"invalid zstd data: {exc}")]) from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise TemplateValidationError(source, [("", "file is not UTF-8 text")]) from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        problem = f"invalid JSON at {where}: {exc.msg}"
        raise TemplateValidationError(source, [("", problem)]) from None


def load_template_file(path: Path) -> AgentTemplate:
    """Load and validate one template file."""
    if not path.name.endswith(SUFFIXES):
        raise TemplateValidationError(
            str(path), [("", "template files must end in .json or .json.zst")]
        )
    return parse_template(read_document(path), str(path))


def template_files(directory: Path) -> list[Path]:
    """Template files directly inside `directory`, sorted by name (the override order)."""
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return []
    return [p for p in entries if p.is_file() and is_template_file(p)]
