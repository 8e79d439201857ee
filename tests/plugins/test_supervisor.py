"""The built-in supervisor: splitting, routing by capability, nesting and failure policies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from core.config import FactorySettings
from core.errors import AgentInputError, SubtaskFailed, TemplateVetoed
from core.factory import AgentFactory
from core.supervisor import DEFAULT_ROUTES, AgentInfo, DeterministicSplitter, split_sections
from tests.core.conftest import write_template
from tests.plugins import ROOT

BUNDLE = ROOT / "examples" / "project_bundle.json"
AGENTS = ["genie_logiciel", "security_analyst", "documentaliste", "hardware"]


@pytest.fixture(autouse=True)
def no_installed_agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFACTORY_HOME", str(tmp_path / "home"))


@pytest.fixture
def template_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "templates"
    directory.mkdir()
    return directory


@pytest.fixture
def factory(template_dir: Path) -> Iterator[AgentFactory]:
    with AgentFactory(FactorySettings(template_dirs=[template_dir])) as made:
        yield made


def supervisor(template_dir: Path, name: str, **parameters: Any) -> None:
    parameters.setdefault("agents", [*AGENTS, name])
    write_template(template_dir, {
        "name": name, "version": "1.0.0", "implementation": "supervisor",
        "capabilities": ["orchestration.delegate"], "parameters": parameters,
    })


def who_did_what(trace: list[dict[str, Any]]) -> list[tuple[str, str | None, int, str]]:
    rows = []
    for record in trace:
        rows.append((record["subtask"], record["agent"], record["depth"], record["status"]))
        if record["status"] == "ok" and "trace" in record["output"]:
            rows.extend(who_did_what(record["output"]["trace"]))
    return rows


def test_the_builtin_supervisor_routes_each_file_by_capability(
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        main(["run", "project_supervisor", "--input", str(BUNDLE)])
    except SystemExit as exc:
        assert not exc.code
    result = json.loads(capsys.readouterr().out)

    assert result["status"] == "ok"
    assert who_did_what(result["trace"]) == [
        ("billing/app.py", "genie_logiciel", 1, "ok"),
        ("billing/.env", "security_analyst", 1, "ok"),
        ("README.md", "documentaliste", 1, "ok"),
        ("ops/", "project_supervisor", 1, "ok"),
        ("ops/hardware_spec.txt", "hardware", 2, "ok"),
        ("ops/report.md", "documentaliste", 2, "ok"),
    ]
    assert "AKIAIOSFODNN7EXAMPLE" not in result["answer"]["billing/.env"]["masked_text"]
    assert result["answer"]["billing/app.py"]["functions"]


def test_markdown_sections_are_split_on_top_level_headings(
    factory: AgentFactory, template_dir: Path
) -> None:
    supervisor(template_dir, "sections", default_capability="text.summarize")
    factory.templates.reload()
    text = ("Intro line.\n\n# Hardware\n\nCPU: 2 x Intel Xeon Gold 6338, 32 cores\nRAM: 256 GB\n\n"
            "# Notes\n\n```\n# not a heading\n```\nThe notes say little.\n")
    result = factory.create_agent("sections").process({"text": text})
    assert [(r["subtask"], r["agent"]) for r in result["trace"]] == [
        ("preamble", "documentaliste"), ("Hardware", "hardware"), ("Notes", "documentaliste")
    ]


def test_nesting_stops_at_max_depth(factory: AgentFactory, template_dir: Path) -> None:
    supervisor(template_dir, "shallow", max_depth=2)
    factory.templates.reload()
    nested = {"files": [{"name": "a/", "files": [
        {"name": "a/notes.md", "content": "# A\n\nShort notes.\n"},
        {"name": "a/b/", "files": [{"name": "a/b/deep.md", "content": "Deep.\n"}]},
    ]}]}

    result = factory.create_agent("shallow").process(nested)

    assert result["status"] == "ok"  # the top level got its one answer...
    inner = result["answer"]["a/"]
    assert inner["status"] == "partial"  # ...whose own part past the limit failed
    assert who_did_what(result["trace"]) == [
        ("a/", "shallow", 1, "ok"), ("a/notes.md", "documentaliste", 2, "ok"),
        ("a/b/", "shallow", 2, "failed"),
    ]
    assert inner["trace"][1]["error"] == (
        "delegating to supervisor 'shallow' would go past max_depth 2"
    )


BINARY = {"files": [{"name": "main.py", "content": "def f():\n    return 1\n"},
                    {"name": "blob.bin", "content": "\u0000\u0001"},
                    {"name": "notes.md", "content": "Notes.\n"}]}


def test_partial_reports_each_failed_subtask_and_keeps_the_others(
    factory: AgentFactory, template_dir: Path
) -> None:
    supervisor(template_dir, "lenient", failure_policy="partial",
               routes={**DEFAULT_ROUTES, "*.bin": "binary.disassemble"})
    factory.templates.reload()
    result = factory.create_agent("lenient").process(BINARY)
    assert result["status"] == "partial"
    assert sorted(result["answer"]) == ["main.py", "notes.md"]
    failed = result["trace"][1]
    assert (failed["subtask"], failed["status"], failed["agent"]) == ("blob.bin", "failed", None)
    assert failed["error"] == "no agent of this supervisor has capability 'binary.disassemble'"


def test_fail_fast_stops_at_the_first_failure_naming_it(
    factory: AgentFactory, template_dir: Path
) -> None:
    supervisor(template_dir, "strict", failure_policy="fail_fast")  # no route for *.bin
    factory.templates.reload()
    with pytest.raises(SubtaskFailed) as caught:
        factory.create_agent("strict").process(BINARY)
    assert caught.value.subtask == "blob.bin"
    assert str(caught.value) == ("supervisor 'strict': subtask 'blob.bin' failed: no route for "
                                 "'blob.bin' (no pattern of parameters.routes matches)")
    assert [r["subtask"] for r in caught.value.trace] == ["main.py", "blob.bin"]  # type: ignore[index]


def test_bad_settings_are_refused_when_the_template_loads(
    factory: AgentFactory, template_dir: Path
) -> None:
    supervisor(template_dir, "typo", failure_policy="sometimes", max_depth=99, agent=["x"])
    factory.templates.reload()
    with pytest.raises(TemplateVetoed) as caught:
        factory.create_agent("typo")
    message = str(caught.value)
    assert "parameters.failure_policy must be one of fail_fast, partial, not 'sometimes'" in message
    assert "parameters.max_depth must be an integer from 1 to 8, not 99" in message
    assert "parameters.agent: unknown supervisor setting" in message


def test_a_task_the_splitter_cannot_read_is_refused_naming_the_field(
    factory: AgentFactory, template_dir: Path
) -> None:
    supervisor(template_dir, "picky")
    factory.templates.reload()
    agent = factory.create_agent("picky")
    with pytest.raises(AgentInputError, match="holds 'files'"):
        agent.process({"numbers": [1, 2]})
    with pytest.raises(AgentInputError, match=r"'files\[0\]' \(a\.md\) needs either"):
        agent.process({"files": [{"name": "a.md"}]})


def test_the_deterministic_splitter_is_a_plain_strategy() -> None:
    splitter = DeterministicSplitter(tuple(DEFAULT_ROUTES.items()), None)
    agents = [AgentInfo("genie_logiciel", "1.0.0", ("code.python.structure",))]
    plan = splitter.plan({"files": [{"name": "src/Tool.PY", "content": "x = 1\n"},
                                    {"name": "docs/", "files": []}]}, agents)
    assert [(s.id, s.capability) for s in plan] == [
        ("src/Tool.PY", "code.python.structure"), ("docs/", "orchestration.delegate")
    ]
    assert split_sections("no heading at all\n") == [("preamble", "no heading at all\n")]
