"""What the command line prints for people: plurals, build progress, highlighted results.

A terminal is simulated with a text stream that says it is a tty, so the same code paths run as
in a user's shell; in a pipe the output must be plain, wide and the same on every run.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli.output import build_steps, plural, print_result_json
from sandbox.build import Step, expected_seconds


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("count", "word", "text"), [
    (0, "rating", "0 ratings"), (1, "rating", "1 rating"), (2, "download", "2 downloads"),
    (1, "example", "1 example"), (3, "dependency", "3 dependencies")])
def test_plural_is_singular_for_exactly_one(count: int, word: str, text: str) -> None:
    assert plural(count, word) == text


def test_build_steps_in_a_pipe_are_plain_lines_with_the_expected_time(
        capsys: pytest.CaptureFixture[str]) -> None:
    with build_steps() as step:
        step(Step("sandbox: compiling the runner (20.5 MB) with Wasmtime", 45.0))
        step(Step("sandbox: runner ready in 41.0 s"))
    out, err = capsys.readouterr()
    assert out == ""  # stdout stays clean for --json
    assert err.splitlines() == [
        "sandbox: compiling the runner (20.5 MB) with Wasmtime (about 45 s)...",
        "sandbox: runner ready in 41.0 s"]


def test_build_steps_on_a_terminal_are_live_lines_that_end_ticked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    monkeypatch.setenv("COLUMNS", "120")
    with build_steps() as step:
        step(Step("sandbox: compiling the runner (20.5 MB) with Wasmtime", 45.0))
        step(Step("sandbox: runner ready in 41.0 s"))
    drawn = screen.getvalue()
    assert "\x1b[" in drawn  # a live display, redrawn in place
    final = drawn.rsplit("\x1b[2K", 1)[-1]  # the last frame drawn
    assert "✓" in final and "of ~45 s" in final
    assert "sandbox: compiling the runner (20.5 MB) with Wasmtime" in drawn


def test_nothing_is_drawn_when_nothing_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    with build_steps():
        pass
    assert screen.getvalue() == ""


def test_expected_build_time_is_what_this_machine_took_last_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFACTORY_CACHE", str(tmp_path))
    typical = expected_seconds("compile")
    (tmp_path / "sandbox").mkdir()
    (tmp_path / "sandbox" / "timings.json").write_text('{"compile": 12.5}')
    assert expected_seconds("compile") == 12.5 and typical > 0
    (tmp_path / "sandbox" / "timings.json").write_text("not json")
    assert expected_seconds("compile") == typical


def test_results_are_highlighted_on_a_terminal_and_plain_json_in_a_pipe(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    result = {"name": "café", "ok": True, "n": [1, None]}
    print_result_json(result)
    piped = capsys.readouterr().out
    assert piped == json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    print_result_json(result)
    shown = screen.getvalue()
    assert "\x1b[" in shown and "café" in shown


def test_help_does_not_import_rich() -> None:
    code = ("import sys\nfrom cli.main import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nprint('rich' in sys.modules, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stderr.strip() == "False"
