"""Hostile guest output never raises in the host: every form ends as a typed `TaskResult`.

Two kinds of attack: values the agent returns or prints (checked by the runner, then by the host),
and a runner the agent has tampered with (`json.dumps` replaced in the shared guest interpreter)
so that the outcome text itself is hostile; the host checks size, then depth, then parses.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from sandbox import Sandbox, SandboxLimits, TaskResult, TaskStatus
from sandbox.checks import json_equal
from sandbox.engine import GuestOutcome
from sandbox.outcome import MAX_DEPTH, finish, nesting_depth, parse_outcome
from sandbox.results import AgentSource
from sandbox.vetting import VettingStatus, vet
from sandbox.worker import WireError, decode_step, encode_step
from tests.sandbox.factories import make_package

pytestmark = pytest.mark.sandbox


def body(code: str, prelude: str = "") -> str:
    lines = "\n".join("    " + line for line in code.strip().splitlines())
    return f"{prelude}def process(task):\n{lines}\n"


def poisoned(outcome: str) -> str:
    """An agent that replaces the runner's `json.dumps` so the outcome text is `outcome`."""
    return f"import json\njson.dumps = lambda *a, **k: {outcome}\n" + body("return {}")


CASES: list[tuple[str, str, TaskStatus, str]] = [
    (
        "nesting 1000 deep",
        body("x = []\nfor _ in range(1000):\n    x = [x]\nreturn {'x': x}"),
        TaskStatus.BAD_OUTPUT,
        "nested deeper than 100",
    ),
    # The guest interpreter itself overflows its wasm stack freeing such a value: a trap.
    (
        "nesting 10^5 deep",
        body("x = []\nfor _ in range(10**5):\n    x = [x]\nreturn {'x': x}"),
        TaskStatus.AGENT_ERROR,
        "stack overflow in the guest",
    ),
    (
        "nesting 10^5 deep, poisoned",
        poisoned("'[' * 10**5 + ']' * 10**5"),
        TaskStatus.BAD_OUTPUT,
        "nested deeper",
    ),
    (
        "nesting past the limit, poisoned",
        poisoned(
            f"'{{\"status\": \"ok\", \"value\": ' + '[' * {MAX_DEPTH + 1} + ']' * "
            f"{MAX_DEPTH + 1} + '}}'"
        ),
        TaskStatus.BAD_OUTPUT,
        "nested deeper",
    ),
    ("50 MB string", body("return {'x': 'x' * 50 * 2**20}"), TaskStatus.OUTPUT_TOO_LARGE, ""),
    (
        "50 MB string, poisoned",
        poisoned("'\"' + 'x' * 50 * 2**20 + '\"'"),
        TaskStatus.OUTPUT_TOO_LARGE,
        "characters",
    ),
    ("NaN", body("return {'x': float('nan')}"), TaskStatus.BAD_OUTPUT, ""),
    ("Infinity", body("return {'x': float('inf')}"), TaskStatus.BAD_OUTPUT, ""),
    (
        "NaN, poisoned",
        poisoned('\'{"status": "ok", "value": NaN}\''),
        TaskStatus.BAD_OUTPUT,
        "NaN is not JSON",
    ),
    (
        "1e999, poisoned",
        poisoned('\'{"status": "ok", "value": 1e999}\''),
        TaskStatus.BAD_OUTPUT,
        "out of range",
    ),
    (
        "a 10^5-digit integer, poisoned",
        poisoned("'{\"status\": \"ok\", \"value\": ' + '9' * 10**5 + '}'"),
        TaskStatus.BAD_OUTPUT,
        "unreadable",
    ),
    ("lone surrogate", body("return {'s': 'a\\ud800b'}"), TaskStatus.BAD_OUTPUT, "surrogate"),
    ("lone surrogate in a key", body("return {'\\udfff': 1}"), TaskStatus.BAD_OUTPUT, "surrogate"),
    (
        "not an outcome object, poisoned",
        poisoned("'[1, 2]'"),
        TaskStatus.BAD_OUTPUT,
        "unreadable outcome",
    ),
    (
        "unknown status, poisoned",
        poisoned('\'{"status": ["ok"]}\''),
        TaskStatus.BAD_OUTPUT,
        "no known status",
    ),
    ("not JSON at all, poisoned", poisoned("'\\x00garbage'"), TaskStatus.BAD_OUTPUT, "unreadable"),
    ("a set", body("return {1, 2}"), TaskStatus.BAD_OUTPUT, "set"),
    (
        "an object whose JSON form exits",
        "class D(dict):\n    def items(self):\n        raise SystemExit(1)\n"
        + body("return D(x=1)"),
        TaskStatus.BAD_OUTPUT,
        "not JSON",
    ),
    (
        "exception whose str() raises",
        "class E(Exception):\n    def __str__(self):\n        raise RuntimeError('nope')\n"
        + body("raise E()"),
        TaskStatus.AGENT_ERROR,
        "E",
    ),
    (
        "exception whose str() exits",
        "class E(Exception):\n    def __str__(self):\n        raise SystemExit(2)\n"
        + body("raise E()"),
        TaskStatus.AGENT_ERROR,
        "E: <exception str() failed>",
    ),
    (
        "exception with a 10 MB message",
        body("raise ValueError('m' * 10 * 2**20)"),
        TaskStatus.AGENT_ERROR,
        "ValueError: mmm",
    ),
    (
        "huge traceback",
        "def f(n):\n    return f(n + 1)\n" + body("return f(0)"),
        TaskStatus.AGENT_ERROR,
        "RecursionError",
    ),
]


@pytest.mark.parametrize(
    ("code", "status", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_output_is_a_typed_result(
    sandbox: Sandbox, code: str, status: TaskStatus, needle: str
) -> None:
    result = sandbox.run_one(code, {})
    assert result.status is status, result.error
    assert needle in result.error
    assert len(result.error) <= 2000 and len(result.traceback) <= 16_000
    # Whatever came back can be shown and stored: UTF-8 JSON, as the CLI and the API write it.
    json.dumps(result.to_json(), ensure_ascii=False).encode()
    assert sandbox.run_one("def process(task):\n    return {'ok': 1}\n", {}).value == {"ok": 1}


def test_huge_traceback_keeps_the_innermost_frames(sandbox: Sandbox) -> None:
    result = sandbox.run_one("def f(n):\n    return f(n + 1)\n" + body("return f(0)"), {})
    assert "frames not shown" in result.traceback
    assert result.traceback.rstrip().endswith("maximum recursion depth exceeded")


def test_printed_lone_surrogates_are_replaced_not_raised(sandbox: Sandbox) -> None:
    result = sandbox.run_one(body("print('a\\udcffb')\nraise ValueError('x\\ud800')"), {})
    assert result.status is TaskStatus.AGENT_ERROR
    assert result.stdout == "a?b\n" and "x?" in result.error
    result.stdout.encode()


def test_non_dict_result_is_a_value_for_run_and_bad_output_for_an_agent(sandbox: Sandbox) -> None:
    assert sandbox.run_one(body("return [1, 2]"), {}).value == [1, 2]
    package = make_package(
        body("return [1, 2]"), examples=[{"name": "list", "input": {}, "expected": {"double": 2}}]
    )
    report = vet(package, sandbox)
    assert report.status is VettingStatus.FAILED
    json.dumps(report.to_json())


def test_vetting_hostile_output_reports_and_never_raises(sandbox: Sandbox) -> None:
    # 55 levels: deep, yet under the manifest's own nesting bound (registry.manifest, 64 levels
    # counting examples/N/expected/double), so the comparison itself is what is exercised.
    deep = body("x = 1\nfor _ in range(55):\n    x = [x]\nreturn {'double': x}")
    expected: object = 1
    for _ in range(55):
        expected = [expected]
    examples = [
        {"name": "deep but equal", "input": {}, "expected": {"double": expected}},
        {"name": "deep and different", "input": {}, "expected": {"double": [[[2]]]}},
    ]
    report = vet(make_package(deep, examples=examples), sandbox)
    assert [e.passed for e in report.examples] == [True, False]
    poisoned_package = make_package(poisoned("'[' * 10**5"), examples=examples)
    report = vet(poisoned_package, sandbox)
    assert report.status is VettingStatus.FAILED
    assert all(e.status is TaskStatus.BAD_OUTPUT for e in report.examples)


def test_cli_prints_one_error_line_for_hostile_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = tmp_path / "agent.py"
    agent.write_text(poisoned("'[' * 10**5"))
    code = 0
    try:
        main(["sandbox", "run", str(agent)])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: agent.py returned a result that is not JSON in the sandbox: "
        "result is nested deeper than 100"
    ]


# -- the host-side readers on their own -------------------------------------------------------


def test_depth_scan_ignores_brackets_inside_strings() -> None:
    text = json.dumps({"s": "[[[[{{{{" * 1000, "v": [[1]]})
    assert nesting_depth(text, 5) == 3
    assert nesting_depth("[" * 10**6, 100) == 101  # stops as soon as the limit is passed


def test_outcome_parser_never_raises() -> None:
    hostile = [
        "",
        "{",
        "null",
        '{"status": {}}',
        '{"status": "ok", "value": "\\ud800"}',
        '{"status": "ok", "memory_peak": "lots", "error": ["x"], "stdout": 7}',
        "[" * 10**6,
        '"' + "x" * 10**7 + '"',
    ]
    for text in hostile:
        result = parse_outcome(text, 0, 0.0, 2**20)
        assert isinstance(result, TaskResult)
    ok = parse_outcome('{"status": "ok", "memory_peak": true, "value": {"a": 1}}', 1, 2.0, 2**20)
    assert ok.value == {"a": 1} and ok.memory_peak_bytes is None
    assert finish(GuestOutcome("{}", 0, 0.0), 100).status is TaskStatus.BAD_OUTPUT


def test_worker_messages_are_checked_like_guest_output() -> None:
    for garbage in [
        b"",
        b"no newline",
        b"{}\n",
        b'{"result": {"status": "pwned"}}\n',
        b'{"fuel_used": -1, "duration_ms": 0}\n{}',
        b"[" * 5000 + b"\n",
        b'{"fuel_used": 1, "duration_ms": 0}\n\xff\xfe',
    ]:
        with pytest.raises(WireError):
            decode_step(garbage)
    step = GuestOutcome('{"status": "ok", "value": 1}', 5, 1.5)
    assert decode_step(encode_step(step, 2**20)) == step
    too_big = decode_step(encode_step(GuestOutcome("x" * 10**7, 0, 0.0), 1000))
    assert isinstance(too_big, TaskResult) and too_big.status is TaskStatus.OUTPUT_TOO_LARGE


def test_json_equal_is_iterative() -> None:
    left: object = []
    right: object = []
    for _ in range(10**5):
        left, right = [left], [right]
    assert json_equal(left, right)
    assert not json_equal({"a": [1, True]}, {"a": [1, 1]})


def test_in_process_sandbox_reads_output_the_same_way() -> None:
    box = Sandbox(isolation="in-process", limits=SandboxLimits(timeout_s=5.0))
    result = box.run_one(AgentSource({"p.py": poisoned("'[' * 10**5")}, "p.py:process"), {})
    assert result.status is TaskStatus.BAD_OUTPUT
