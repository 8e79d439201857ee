"""The disk caches of `agentfactory run`: resolved templates and entry points.

A second run is served from the caches (no pydantic, no `importlib.metadata`), and any change a
user makes is seen by the very next run: an edited template, a broken one, a changed setting,
a newly installed plugin. A damaged cache file is ignored.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from core.config import ENV_ALLOWED_TOOLS, ENV_TEMPLATE_PATH, FactorySettings
from core.entrypoints import cached_entry_points
from core.hashing import content_hash
from core.manager import TemplateManager
from core.plugins import ENTRY_POINT_GROUP, make_plugin_manager
from core.resolved import ResolvedTemplate
from core.template_cache import TemplateDiskCache
from tests.core.conftest import template_doc, write_template
from tests.plugin_dist import write_plugin

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / "examples" / "report.md"


@pytest.fixture(autouse=True)
def isolated(template_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Operator templates in `template_dir`; this test's own cache and home."""
    monkeypatch.setenv(ENV_TEMPLATE_PATH, str(template_dir))
    monkeypatch.setenv("AGENTFACTORY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AGENTFACTORY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(ENV_ALLOWED_TOOLS, raising=False)
    return tmp_path / "cache"


def run(capsys: pytest.CaptureFixture[str], template: str) -> tuple[int, str, str]:
    try:
        main(["run", template, "--input", str(REPORT)])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def cache_files(cache: Path) -> list[Path]:
    return sorted((cache / "templates").glob("templates-*.json"))


def test_an_edited_template_is_seen_by_the_next_run(
    capsys: pytest.CaptureFixture[str], template_dir: Path, isolated: Path
) -> None:
    write_template(template_dir, template_doc("bot", version="1.0.0"))
    assert json.loads(run(capsys, "bot")[1])["version"] == "1.0.0"
    assert len(cache_files(isolated)) == 1
    # Same size, and most likely the same mtime tick: only the content tells them apart.
    write_template(template_dir, template_doc("bot", version="2.0.0"))
    assert json.loads(run(capsys, "bot")[1])["version"] == "2.0.0"


def test_an_edit_that_breaks_the_template_fails_the_next_run(
    capsys: pytest.CaptureFixture[str], template_dir: Path
) -> None:
    write_template(template_dir, template_doc("bot"))
    assert run(capsys, "bot")[0] == 0
    path = write_template(template_dir, template_doc("bot", version="not a version"))
    code, out, err = run(capsys, "bot")
    assert (code, out) == (1, "")
    assert err == f"error: {path}: version: 'not a version' is not a valid PEP 440 version\n"


def test_a_deleted_template_is_not_served_from_the_cache(
    capsys: pytest.CaptureFixture[str], template_dir: Path
) -> None:
    path = write_template(template_dir, template_doc("bot"))
    assert run(capsys, "bot")[0] == 0
    path.unlink()
    code, _, err = run(capsys, "bot")
    assert code == 1 and "template 'bot' not found" in err


def test_a_setting_change_is_seen_by_the_next_run(
    capsys: pytest.CaptureFixture[str], template_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_template(template_dir, template_doc("bot", tools=["shell"]))
    monkeypatch.setenv(ENV_ALLOWED_TOOLS, "shell")
    assert run(capsys, "bot")[0] == 0
    monkeypatch.delenv(ENV_ALLOWED_TOOLS)  # the operator withdraws the permission
    code, _, err = run(capsys, "bot")
    assert code == 1
    assert "template 'bot' refused: tool 'shell' is on the deny-list" in err


def test_a_refused_template_is_never_cached(
    capsys: pytest.CaptureFixture[str], template_dir: Path, isolated: Path
) -> None:
    write_template(template_dir, template_doc("bot", tools=["shell"]))
    for _ in range(2):
        code, _, err = run(capsys, "bot")
        assert code == 1 and "refused" in err
    assert cache_files(isolated) == []


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"\x00\xff not json",
        b"[1, 2, 3]",
        b'{"format": 1, "key": {}, "templates": {}}',
        b"[" * 100_000,
    ],
)
def test_a_damaged_cache_file_is_ignored_and_rewritten(
    capsys: pytest.CaptureFixture[str], template_dir: Path, isolated: Path, damage: bytes
) -> None:
    write_template(template_dir, template_doc("bot", description="real"))
    run(capsys, "bot")
    [path] = cache_files(isolated)
    path.write_bytes(damage)
    code, out, _ = run(capsys, "bot")
    assert code == 0 and json.loads(out)["agent"] == "bot"
    assert "bot" in json.loads(path.read_bytes())["templates"]


def test_a_tampered_entry_is_not_served(
    capsys: pytest.CaptureFixture[str], template_dir: Path, isolated: Path
) -> None:
    write_template(template_dir, template_doc("bot", version="1.0.0"))
    run(capsys, "bot")
    [path] = cache_files(isolated)
    data = json.loads(path.read_bytes())
    data["templates"]["bot"]["version"] = "6.6.6"  # its content hash no longer matches
    path.write_text(json.dumps(data))
    assert json.loads(run(capsys, "bot")[1])["version"] == "1.0.0"


def test_a_warm_run_imports_neither_pydantic_nor_importlib_metadata(
    template_dir: Path, tmp_path: Path
) -> None:
    code = (
        "import sys\n"
        "from cli.main import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sys.modules), file=sys.stderr)\n"
    )
    env = {**os.environ, "AGENTFACTORY_CACHE": str(tmp_path / "cache"),
           "AGENTFACTORY_HOME": str(tmp_path / "home"), ENV_TEMPLATE_PATH: str(template_dir)}
    argv = [sys.executable, "-c", code, "run", "documentaliste", "--input", str(REPORT)]
    outputs, imported = [], []
    for _ in range(2):
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=60,
                              check=True, env=env)
        outputs.append(json.loads(proc.stdout))
        imported.append(set(proc.stderr.split()))
    assert outputs[0] == outputs[1]
    assert {"pydantic", "importlib.metadata"} <= imported[0]  # the first run fills the caches
    assert not imported[1] & {"pydantic", "importlib.metadata", "zstandard"}


def test_the_manager_serves_from_disk_without_reading_the_sources(
    template_dir: Path, tmp_path: Path
) -> None:
    pm = make_plugin_manager(load_entry_points=False)
    write_template(template_dir, template_doc("bot"))
    settings = FactorySettings(template_dirs=[template_dir])
    disk = TemplateDiskCache(tmp_path / "cache")
    first = TemplateManager(settings, pm, include_builtin=False, disk_cache=disk).get("bot")
    manager = TemplateManager(settings, pm, include_builtin=False, disk_cache=disk)
    assert manager.get("bot") == first
    metrics = manager.metrics()
    assert (metrics.disk_hits, metrics.templates_loaded) == (1, 0)
    assert manager.names() == ["bot"]  # asking for the catalog builds it


def test_resolved_templates_round_trip_and_carry_their_hash() -> None:
    with_names = TemplateManager(FactorySettings(), make_plugin_manager(load_entry_points=False))
    for name in with_names.names():
        template = with_names.get(name)
        document = template.document()
        assert ResolvedTemplate.from_document(document) == template
        assert content_hash(document) == template.hash


@pytest.mark.parametrize(
    "change",
    [
        {"tools": "shell"},
        {"tools": [1]},
        {"hooks": {"task_guard": 3}},
        {"extra": 1},
        {"model": {"provider": "local"}},
        {"metadata": {}},
    ],
)
def test_from_document_refuses_anything_else(change: dict[str, object]) -> None:
    manager = TemplateManager(FactorySettings(), make_plugin_manager(load_entry_points=False))
    document = {**manager.get("base_agent").document(), **change}
    with pytest.raises(ValueError):
        ResolvedTemplate.from_document(document)


def test_entry_points_cache_sees_a_newly_installed_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    cache = tmp_path / "plugins"
    before = [ep.name for ep in cached_entry_points(ENTRY_POINT_GROUP, cache)]
    assert "documentaliste" in before
    assert [ep.name for ep in cached_entry_points(ENTRY_POINT_GROUP, cache)] == before
    write_plugin(site, "cache_probe_plugin", "")
    after = cached_entry_points(ENTRY_POINT_GROUP, cache)
    assert sorted([*before, "cache_probe_plugin"]) == [ep.name for ep in after]
    for path in cache.glob("entry-points-*.json"):
        path.write_text('{"key": null, "entry_points": [["evil", "os:system"]]}')
    assert [ep.name for ep in cached_entry_points(ENTRY_POINT_GROUP, cache)] == [
        ep.name for ep in after
    ]
