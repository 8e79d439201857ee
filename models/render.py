"""Prompt rendering: `{field}` placeholders filled from a task, and nothing else.

A placeholder is `{name}` or `{name.key}` (a key of a nested object); `{{` and `}}` are literal
braces. No attribute access, indexing, conversion or format spec: a template is data, and
rendering one can never run code or reach an object's internals. A string value is inserted as
it is; any other JSON value as compact JSON. A placeholder the task does not fill is a
`PromptFieldMissing` naming it and the fields the task has.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from typing import Any

from models.errors import PromptFieldMissing

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)*")
_PARSER = string.Formatter()


def placeholders(text: str) -> list[str]:
    """The fields `text` names, in order; `ValueError` for anything but plain `{field}`s."""
    names = []
    try:
        parsed = list(_PARSER.parse(text))
    except ValueError as exc:  # an unmatched brace
        raise ValueError(f"{exc} (write {{{{ and }}}} for literal braces)") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not _FIELD.fullmatch(name) or spec or conversion:
            whole = "{" + name + (f"!{conversion}" if conversion else "") + \
                (f":{spec}" if spec else "") + "}"
            raise ValueError(f"{whole!r} is not a placeholder: write {{field}} or {{field.key}}")
        names.append(name)
    return names


def render(text: str, task: Mapping[str, Any], template: str, prompt: str) -> str:
    """`text` with each placeholder replaced by the task's value (see the module doc)."""
    pieces = []
    for literal, name, _spec, _conversion in _PARSER.parse(text):
        pieces.append(literal)
        if name is None:
            continue
        value: Any = task
        for part in name.split("."):
            if not isinstance(value, Mapping) or part not in value:
                raise PromptFieldMissing(template, prompt, name, sorted(task))
            value = value[part]
        pieces.append(value if isinstance(value, str) else
                      json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return "".join(pieces)
