"""`agentfactory sandbox run` and `agentfactory vet`, through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from registry.archive import pack_files
from tests.sandbox.factories import make_package

pytestmark = pytest.mark.sandbox


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_run_prints_the_result_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    agent = tmp_path / "agent.py"
    agent.write_text("def process(task):\n    return {'sum': sum(task['xs'])}\n")
    code, out, _ = run_cli(["sandbox", "run", str(agent), "--input", '{"xs": [1, 2, 3]}'], capsys)
    assert code == 0 and json.loads(out) == {"sum": 6}


@pytest.mark.parametrize(
    ("source", "options", "needle"),
    [
        ("def process(task):\n    raise KeyError('xs')\n", [], "raised an error"),
        ("def process(task):\n    while True:\n        pass\n", ["--fuel", "1000000"],
         "ran out of fuel"),
        ("def process(task):\n    while True:\n        pass\n",
         ["--fuel", "10000000000000", "--timeout-s", "0.05"], "ran past its deadline"),
        ("def process(task):\n    return {1}\n", [], "not JSON"),
    ],
)
def test_run_failure_is_one_line_and_nonzero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, options: list[str],
    needle: str,
) -> None:
    agent = tmp_path / "agent.py"
    agent.write_text(source)
    code, out, err = run_cli(["sandbox", "run", str(agent), *options], capsys)
    assert code == 1 and out == ""
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        next(line for line in err.splitlines() if needle in line)
    ]


@pytest.mark.parametrize(
    ("given", "line"),
    [
        ("{not json", "error: --input is not valid JSON (line 1, column 2): expecting property "
                      "name enclosed in double quotes"),
        ('{"a": 1,\n "b": }', "error: --input is not valid JSON (line 2, column 7): expecting "
                              "value"),
        ("[1, 2]", "error: --input: expected a JSON object or a list of objects"),
    ],
)
def test_run_blames_a_bad_input_not_the_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given: str, line: str
) -> None:
    agent = tmp_path / "agent.py"
    agent.write_text("def process(task):\n    return task\n")
    code, out, err = run_cli(["sandbox", "run", str(agent), "--input", given], capsys)
    assert (code, out, err.splitlines()) == (1, "", [line])


def test_run_names_the_input_file_that_is_not_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agent, task = tmp_path / "agent.py", tmp_path / "task.json"
    agent.write_text("def process(task):\n    return task\n")
    task.write_text("{'single': 'quotes'}")
    code, _, err = run_cli(["sandbox", "run", str(agent), "--input", f"@{task}"], capsys)
    assert code == 1 and err.startswith(f"error: --input @{task} is not valid JSON (line 1, ")


def test_vet_prints_report_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "doubler.zip"
    archive.write_bytes(pack_files(make_package().files))
    code, out, _ = run_cli(["vet", str(archive)], capsys)
    assert code == 0 and "acme/doubler 1.0.0: passed" in out
    code, out, _ = run_cli(["vet", str(archive), "--json"], capsys)
    assert code == 0 and json.loads(out)["status"] == "passed"


def test_vet_failed_package_exits_nonzero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "bad.zip"
    bad = make_package("def process(task):\n    return {'double': -1, 'label': ''}\n")
    archive.write_bytes(pack_files(bad.files))
    code, out, err = run_cli(["vet", str(archive)], capsys)
    assert code == 1 and "failed" in out and "failed vetting" in err


def test_vet_failure_names_the_differing_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "off.zip"
    off = make_package("def process(task):\n    n = task['n']\n"
                       "    return {'double': n * 2, 'label': f'n = {n}'}\n")
    archive.write_bytes(pack_files(off.files))
    code, out, _ = run_cli(["vet", str(archive)], capsys)
    assert code == 1 and 'label: expected "n=2", found "n = 2"' in out

