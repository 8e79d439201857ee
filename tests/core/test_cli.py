"""`agentfactory templates ...` and `agentfactory run ...`, through `cli.main:main`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from core.config import ENV_TEMPLATE_PATH
from tests.core.conftest import template_doc, write_template

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def operator_dir(template_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(ENV_TEMPLATE_PATH, str(template_dir))
    return template_dir


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json(capsys: pytest.CaptureFixture[str], template_dir: Path) -> None:
    write_template(template_dir, template_doc("mine", extends="analyst", capabilities=["x"]))
    code, out, _ = run_cli(capsys, "templates", "list", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert {"base_agent", "documentaliste", "security_analyst", "mine"} <= set(rows)
    mine = rows["mine"]
    assert mine["version"] == "1.0.0"
    assert len(mine["hash"]) == 64
    assert mine["capabilities"][-1] == "x"
    assert mine["lineage"] == ["mine", "analyst", "base_agent"]


def test_list_text_reports_broken_templates_on_stderr(
    capsys: pytest.CaptureFixture[str], template_dir: Path
) -> None:
    write_template(template_dir, template_doc("shelly", tools=["shell"]))
    code, out, err = run_cli(capsys, "templates", "list")
    assert code == 0
    assert out.splitlines()[0].startswith("analyst ")
    assert "skipped shelly: template 'shelly' refused" in err


def test_show_prints_the_resolved_template(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "templates", "show", "security_analyst")
    assert code == 0
    shown = json.loads(out)
    assert shown["metadata"]["lineage"] == ["security_analyst", "analyst", "base_agent"]
    assert "regex_search" in shown["tools"]


def test_show_unknown_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "templates", "show", "nope")
    assert (code, out) == (1, "")
    assert err == "error: template 'nope' not found\n"


def test_validate_ok_and_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = write_template(tmp_path / "pkg", template_doc("child", extends="analyst"))
    code, out, _ = run_cli(capsys, "templates", "validate", str(good))
    assert code == 0 and out.startswith(f"ok: {good}: child 1.0.0 ")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(template_doc("bad", tools=["a", "b", 7])))
    code, out, err = run_cli(capsys, "templates", "validate", str(bad))
    assert code == 1
    assert err.count("\n") == 1
    assert f"{bad}: tools[2]: Input should be a valid string" in err


def test_validate_directory_reports_each_failure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pkg = tmp_path / "pkg"
    write_template(pkg, template_doc("fine"))
    write_template(pkg, template_doc("orphan", extends="ghost"))
    write_template(pkg, template_doc("risky", tools=["shell"]))
    code, out, err = run_cli(capsys, "templates", "validate", str(pkg))
    assert code == 1
    assert "ok: " in out and "fine" in out
    assert "template 'ghost' not found (required by orphan)" in err
    assert "refused: tool 'shell'" in err
    assert err.splitlines()[-1] == "error: 2 of 3 template files are invalid"


def test_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "templates", "schema")
    assert code == 0
    assert json.loads(out)["properties"]["version"]["type"] == "string"


def test_run_text_file_becomes_text_task(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "note.txt"
    source.write_text("Alpha beta\ngamma\n")
    code, out, _ = run_cli(
        capsys, "run", "base_agent", "--input", str(source), "--config", '{"lowercase": true}'
    )
    assert code == 0
    result = json.loads(out)
    assert result["text"] == "alpha beta\ngamma"
    assert result["fields"] == ["text"]


def test_run_json_object_is_the_task(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"text": "one two", "extra": 1}))
    code, out, _ = run_cli(capsys, "run", "base_agent", "--input", str(task))
    assert code == 0 and json.loads(out)["fields"] == ["extra", "text"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["run", "base_agent", "--input", "missing.txt"],
            "input file 'missing.txt' does not exist",
        ),
        (["run", "ghost", "--input", "{report}"], "template 'ghost' not found"),
        (
            ["run", "base_agent", "--input", "{report}", "--config", "[1]"],
            "--config must be a JSON object, not list",
        ),
        (
            ["run", "base_agent", "--input", "{report}", "--config", "{"],
            "--config is not valid JSON",
        ),
    ],
)
def test_run_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    argv = [a.replace("{report}", str(REPO / "examples" / "report.md")) for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (1, "")
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1


def test_real_process_reads_stdin_and_never_shows_a_traceback(template_dir: Path) -> None:
    cmd = [sys.executable, "-c", "from cli.main import main; main()"]
    ok = subprocess.run(
        [*cmd, "run", "base_agent", "--input", "-"],
        input="Hi there",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["stats"]["words"] == 2
    bad = subprocess.run(
        [*cmd, "templates", "validate", str(template_dir / "nothing.json")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["run", "documentalist", "--input", "{report}"],
            "template 'documentalist' not found; did you mean 'documentaliste'?",
        ),
        (
            ["templates", "show", "securty_analyst"],
            "template 'securty_analyst' not found; did you mean 'security_analyst'",
        ),
        (
            ["run", "alice/my-agent", "--input", "{report}"],
            "template 'alice/my-agent' not found; package alice/my-agent is not installed: "
            "run `agentfactory install alice/my-agent` first",
        ),
        (["run", "zzzz", "--input", "{report}"], "template 'zzzz' not found\n"),
    ],
)
def test_unknown_names_get_a_way_forward(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.setenv("AGENTFACTORY_HOME", str(tmp_path / "home"))
    argv = [a.replace("{report}", str(REPO / "examples" / "report.md")) for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (1, "")
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1


def test_an_installed_package_is_not_told_to_install_itself(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from marketplace.client.lockfile import LockEntry, Lockfile, VettingSummary, write_lock

    home = tmp_path / "home"
    home.mkdir()
    # In the lockfile, but its files are gone: loading refuses it (no install record), and the
    # answer says to reinstall it, never to install it as if it were missing.
    entry = LockEntry(name="alice/my-agent", version="1.0.0", digest="ab" * 32, size=1,
                      key_id="k" * 32, public_key="", publisher="alice",
                      vetting=VettingSummary(passed=True))
    write_lock(home, Lockfile(agents={"alice/my-agent": entry}))
    monkeypatch.setenv("AGENTFACTORY_HOME", str(home))
    report = str(REPO / "examples" / "report.md")
    code, _, err = run_cli(capsys, "run", "alice/my-agent", "--input", report)
    assert code == 1
    assert err == (
        "error: refusing to load alice/my-agent: .agentfactory/RECORD is missing; "
        "reinstall it with `agentfactory install --locked alice/my-agent`\n"
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.startswith("agentfactory, version ")


def test_start_up_imports_only_what_the_command_needs() -> None:
    """`--help` and a built-in run stay fast: nothing they do not use is imported."""
    logic = {f"plugins.logic.{name}"
             for name in ("documentaliste", "genie_logiciel", "hardware", "security_analyst")}
    code = (
        "import sys\n"
        "from cli.main import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sys.modules), file=sys.stderr)\n"
    )

    def imported(*argv: str) -> set[str]:
        # Hot reload on, as an operator may set it for the server: a one-shot run ignores it.
        env = {**os.environ, "AGENTFACTORY_HOT_RELOAD": "1"}
        proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                              text=True, cwd=REPO, timeout=60, check=True, env=env)
        return set(proc.stderr.split())

    helped = imported("--help")
    assert not helped & {"pydantic", "asyncio", "watchdog", "marketplace.client.lockfile", *logic}
    ran = imported("run", "documentaliste", "--input", str(REPO / "examples" / "report.md"))
    assert not ran & {"asyncio", "watchdog", *(logic - {"plugins.logic.documentaliste"})}
    assert "plugins.logic.documentaliste" in ran
