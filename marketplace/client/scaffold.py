"""`agentfactory init`: scaffold a package directory that builds, vets and publishes as is.

The scaffold is a small real agent ("text statistics": words, lines, the most frequent words),
so a new publisher can run the whole flow -- build, publish, install, run -- before writing a
line. Invariants: the generated `process.py` imports only modules the sandbox allows; its
first declared example and the README's sample output are what that `process.py` returns (they
are computed by running it); the README's commands are fenced code blocks that work from the
package directory (`build` writes `.dist/`); the template is
named by the package's normalized name, as `registry.archive` requires; nothing is written into
a non-empty directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from marketplace.client.errors import ScaffoldError
from registry.names import normalize_name, split_name

PROCESS_PY = '''"""Text statistics: count words and lines and list the most frequent words.

Runs inside the Agent Factory sandbox, so it imports only the standard library.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

WORD = re.compile(r"[^\\W_]+(?:['-][^\\W_]+)*")


def process(task: dict[str, Any]) -> dict[str, Any]:
    text = task.get("text")
    if not isinstance(text, str):
        raise ValueError("'text' must be a string")
    top = task.get("top", 3)
    if not isinstance(top, int) or top < 0:
        raise ValueError("'top' must be a non-negative integer")
    words = [w.lower() for w in WORD.findall(text)]
    counts = Counter(words)
    # Ties are broken alphabetically so the same text always gives the same answer.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    return {
        "words": len(words),
        "lines": len(text.splitlines()),
        "characters": len(text),
        "top_words": [{"word": w, "count": c} for w, c in ranked],
    }
'''

EXAMPLE_INPUT: dict[str, object] = {"text": "the cat and the hat", "top": 1}

README = """# {name}

{summary}

## Input

A JSON object: `text`, the text to measure, and `top` (default 3), how many of the most frequent
words to return. For example:

```json
{example_input}
```

## Output

For that input, `process` returns:

```json
{example_output}
```

## Develop

Try the agent in the sandbox, then build, vet and publish the package:

```sh
agentfactory sandbox run process.py --input '{example_input}'
agentfactory build .            # writes .dist/<namespace>-<name>-<version>.zip
agentfactory vet .dist/*.zip    # runs the examples of agent.json in the sandbox
agentfactory publish .
```
"""


def example_output(task: dict[str, object]) -> dict[str, Any]:
    """What the scaffold's `process.py` returns for `task`, computed by running that very code.

    The code is this module's own constant (standard library only), run in a fresh namespace; so
    the README's sample output and the manifest's first example cannot drift from the agent.
    """
    namespace: dict[str, Any] = {}
    exec(compile(PROCESS_PY, "process.py", "exec"), namespace)
    result: dict[str, Any] = namespace["process"](dict(task))
    return result


def _readme(name: str, summary: str) -> str:
    return README.format(
        name=name,
        summary=summary,
        example_input=json.dumps(EXAMPLE_INPUT),
        example_output=json.dumps(example_output(EXAMPLE_INPUT), indent=2, ensure_ascii=False),
    )


def _manifest(name: str, summary: str, author: str, version: str) -> dict[str, object]:
    short = name.split("/")[1]
    return {
        "name": name,
        "version": version,
        "summary": summary,
        "description": "Counts words, lines and characters and lists the most frequent words.",
        "license": "MIT",
        "authors": [author] if author else [],
        "keywords": ["text", "statistics"],
        "entry": "process.py:process",
        "templates": [f"templates/{normalize_name(name).split('/')[1]}.json"],
        "requires": {},
        "permissions": [],
        "examples": [
            {
                "name": "counts",
                "input": EXAMPLE_INPUT,
                "expected": example_output(EXAMPLE_INPUT),
            },
            {
                "name": "multiline",
                "input": {"text": f"{short}\nworks\nworks"},
                "checks": [
                    {"path": "lines", "op": "eq", "value": 3},
                    {"path": "top_words.0.word", "op": "eq", "value": "works"},
                    {"path": "top_words", "op": "type", "value": "array"},
                ],
            },
        ],
    }


def _template(name: str, summary: str, version: str) -> dict[str, object]:
    return {
        "name": normalize_name(name),
        "version": version,
        "description": summary,
        "role": "Measure a text and report its most frequent words.",
        "capabilities": ["text-statistics"],
        "tools": [],
        "prompts": {"system": "You measure texts precisely."},
        "parameters": {"top": 3},
    }


def scaffold(
    directory: Path,
    name: str,
    *,
    summary: str = "",
    author: str = "",
    version: str = "1.0.0",
) -> list[Path]:
    """Write a new package into `directory` (missing or empty); return the files written."""
    split_name(name)  # InvalidName with the reason, before anything touches the disk
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ScaffoldError(str(directory), "the directory exists and is not empty")
    summary = summary or f"{name.split('/')[1]}: text statistics for Agent Factory"
    manifest = _manifest(name, summary, author, version)
    template_path = str(manifest["templates"][0])  # type: ignore[index]
    files = {
        "agent.json": json.dumps(manifest, indent=2) + "\n",
        template_path: json.dumps(_template(name, summary, version), indent=2) + "\n",
        "process.py": PROCESS_PY,
        "README.md": _readme(name, summary),
    }
    written = []
    for rel, text in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def set_version(directory: Path, version: str) -> None:
    """Bump the version in `agent.json` and in every template it lists (used by tests/docs)."""
    manifest_path = Path(directory) / "agent.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["version"] = version
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    for rel in manifest.get("templates", []):
        path = Path(directory) / rel
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc["version"] = version
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
