"""The package `agentfactory init` writes, read and used the way its README tells a new publisher.

The README's commands are run as written, from the package directory, through the real entry
point; its sample output is compared with what the sandbox really prints for its example input.
"""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path

import pytest

from cli.main import main
from marketplace.client.scaffold import scaffold
from marketplace.server.web.markdown import render_markdown

FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "wordy"
    scaffold(directory, "alice/wordy")
    monkeypatch.chdir(directory)
    return directory


def blocks(readme: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(readme) if lang == language]


def commands(readme: str) -> list[list[str]]:
    """The shell lines of the README as argv lists, without the leading `agentfactory`."""
    lines = [shlex.split(line, comments=True) for block in blocks(readme, "sh")
             for line in block.splitlines()]  # fmt: skip
    assert all(argv[0] == "agentfactory" for argv in lines)
    return [argv[1:] for argv in lines]


def command(readme: str, *prefix: str) -> list[str]:
    return next(argv for argv in commands(readme) if argv[: len(prefix)] == list(prefix))


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_readme_commands_show_as_code_on_the_package_page(package: Path) -> None:
    readme = (package / "README.md").read_text()
    html = str(render_markdown(readme))
    code_blocks = re.findall(r"<pre><code[^>]*>(.*?)</code></pre>", html, re.DOTALL)
    assert any("agentfactory vet .dist/*.zip" in block for block in code_blocks)
    assert any("agentfactory sandbox run process.py" in block for block in code_blocks)
    assert [argv[0] for argv in commands(readme)] == ["sandbox", "build", "vet", "publish"]


def test_readme_points_at_the_folder_build_writes(package: Path) -> None:
    readme = (package / "README.md").read_text()
    assert re.search(r"(?<![.\w])dist/", readme) is None


@pytest.mark.sandbox
def test_readme_sample_output_is_what_its_example_prints(
    package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (package / "README.md").read_text()
    example_input, sample_output = blocks(readme, "json")
    argv = command(readme, "sandbox", "run")
    assert argv[argv.index("--input") + 1] == example_input.strip()
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert out == sample_output


@pytest.mark.sandbox
def test_readme_build_then_vet_works_as_written(
    package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (package / "README.md").read_text()
    code, _, err = run_cli(command(readme, "build"), capsys)
    assert code == 0, err
    vet = command(readme, "vet")
    archives = glob.glob(vet[1])  # the shell would expand the pattern
    assert len(archives) == 1
    code, out, err = run_cli([vet[0], *archives], capsys)
    assert code == 0, err
    assert "alice/wordy 1.0.0: passed" in out


@pytest.mark.sandbox
def test_project_readme_tour_runs_the_new_agent_from_where_init_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tour = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    lines = [shlex.split(line, comments=True) for block in blocks(tour, "sh")
             for line in block.splitlines() if line.startswith("agentfactory ")]  # fmt: skip
    init = next(argv[1:] for argv in lines if argv[1] == "init")
    sandbox_run = next(argv[1:] for argv in lines if argv[1:3] == ["sandbox", "run"])
    monkeypatch.chdir(tmp_path)
    assert run_cli(init, capsys)[0] == 0
    code, out, err = run_cli(sandbox_run, capsys)
    assert code == 0, err
    assert '"top_words"' in out
