"""Run the benchmarks and print their figures, one JSON object per line.

    python benchmarks/run.py            # every benchmark
    python benchmarks/run.py factory    # only figures whose name starts with "factory"

Each `benchmarks/bench_*.py` declares the figure groups it prints in a `# groups: a b` line and
prints `{"name": ..., "value": ..., "unit": ...}` lines. A script runs only when one of its groups
matches the prefix; its lines are filtered by the prefix. Timings are never asserted: a slow
machine prints slow figures, it does not fail.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def declared_groups(script: Path) -> list[str]:
    match = re.search(r"^# groups: (.+)$", script.read_text(encoding="utf-8"), re.MULTILINE)
    return match.group(1).split() if match else [script.stem.removeprefix("bench_")]


def main(argv: list[str]) -> int:
    prefix = argv[0] if argv else ""
    group = prefix.split(".", 1)[0]
    failed = 0
    for script in sorted(HERE.glob("bench_*.py")):
        if group and group not in declared_groups(script):
            continue
        command = [sys.executable, str(script), prefix]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=HERE.parent)
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                figure = json.loads(line)
            except json.JSONDecodeError:
                print(line, end="", file=sys.stderr)
                continue
            if isinstance(figure, dict) and str(figure.get("name", "")).startswith(prefix):
                print(json.dumps(figure), flush=True)
        if proc.wait() != 0:
            failed += 1
            print(f"{script.name} exited with {proc.returncode}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
