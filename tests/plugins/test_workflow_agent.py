"""The built-in `redact_and_summarize` workflow, run the way a user runs it: `agentfactory run`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from tests.plugins import ROOT

LEAKY = ROOT / "examples" / "leaky_config.env"
# Every secret of examples/leaky_config.env, as written there.
SECRETS = (
    "Tr0ub4dor-and-3", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "ghp_4V9xq2LmT8rZc1YwB6nK0pJd3sHf7gEaUi5o", "xoxb-2048119231-1938402214-q0Lr7VbXyZpT4wNc8uKd",
    "s3nd-m41l-n0w!", "billing@example.com", "4111 1111 1111 1111",
    "FR76 3000 6000 0112 3456 7890 189", "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeL",
)


@pytest.fixture(autouse=True)
def no_installed_agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFACTORY_HOME", str(tmp_path / "home"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_builtin_workflow_masks_then_summarizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert all(secret in LEAKY.read_text() for secret in SECRETS)

    code, out, err = run(capsys, "run", "redact_and_summarize", "--input", str(LEAKY))

    assert code == 0, err
    for secret in SECRETS:
        assert secret not in out
    result = json.loads(out)
    output = result["output"]
    assert output["risk"] == "critical"
    assert output["findings"]["aws_access_key_id"] == 1
    assert output["summary"] and all(isinstance(s, str) for s in output["summary"])
    assert "AKIA****************" in output["masked_text"]
    assert [(s["name"], s["agent"], s["status"]) for s in result["steps"]] == [
        ("mask", "security_analyst", "ok"), ("summarize", "documentaliste", "ok")
    ]


def test_the_builtin_workflow_is_listed_and_validated(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "templates", "show", "redact_and_summarize")
    assert code == 0
    shown = json.loads(out)
    assert shown["implementation"] == "workflow"
    assert [s["agent"] for s in shown["workflow"]["steps"]] == ["security_analyst",
                                                                  "documentaliste"]


def test_a_workflow_error_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "leaky_flow.json").write_text(json.dumps({
        "name": "leaky_flow", "version": "1.0.0",
        "workflow": {"steps": [{"name": "mask", "agent": "security_analyst",
                                "input": {"text": {"from": "/input/body"}}}]},
    }))
    monkeypatch.setenv("AGENTFACTORY_TEMPLATE_PATH", str(templates))
    code, out, err = run(capsys, "run", "leaky_flow", "--input", str(LEAKY))
    assert code == 1
    assert out == ""
    assert "workflow 'leaky_flow': step 'mask': input: /input/body points to nothing" in err
    assert "Traceback" not in err
