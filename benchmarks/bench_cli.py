# groups: cli
"""Start-up of the command line, timed as whole processes (interpreter start-up included).

    python benchmarks/run.py cli

- `cli.help_ms`: `agentfactory --help`, median of rounds.
- `cli.run_builtin_ms`: `agentfactory run documentaliste --input examples/report.md`, median.
- `cli.python_pass_ms`: `python -c pass` with the same interpreter, median: the yardstick.
- `cli.run_over_python_x`: the run divided by the yardstick, the median of per-round ratios.
  The two commands alternate within each round, so a machine that slows down or speeds up during
  the benchmark moves both sides of a ratio alike.

The environment is the caller's (`AGENTFACTORY_HOME`, `PYTHONDONTWRITEBYTECODE`, ...), as a user
would run the commands. Figures are printed, never asserted.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from _util import emit

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).with_name("agentfactory")
ROUNDS = 11
HELP = [str(SCRIPT), "--help"]
RUN = [str(SCRIPT), "run", "documentaliste", "--input", "examples/report.md"]
PASS = [sys.executable, "-c", "pass"]


def _wall_s(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    for command in (HELP, RUN, PASS):  # warm the file cache; not counted
        _wall_s(command)
    helps, runs, passes = [], [], []
    for _ in range(ROUNDS):
        helps.append(_wall_s(HELP))
        runs.append(_wall_s(RUN))
        passes.append(_wall_s(PASS))
    emit("cli.help_ms", statistics.median(helps) * 1000, "ms", target="<= 300", rounds=ROUNDS)
    emit("cli.run_builtin_ms", statistics.median(runs) * 1000, "ms", rounds=ROUNDS,
         command="agentfactory run documentaliste --input examples/report.md")
    emit("cli.python_pass_ms", statistics.median(passes) * 1000, "ms", rounds=ROUNDS)
    ratio = statistics.median(run / yardstick for run, yardstick in zip(runs, passes, strict=True))
    emit("cli.run_over_python_x", ratio, "x", target="<= 5", rounds=ROUNDS)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
