"""Hot reload through watchdog: add, edit, delete, invalid edit. Waits are bounded, not sleeps."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pluggy
import pytest

from core.config import FactorySettings
from core.errors import TemplateError, TemplateNotFound
from core.factory import AgentFactory
from core.manager import ReloadEvent, TemplateManager
from tests.core.conftest import template_doc, write_template

BOUND_S = 10.0  # generous upper bound; the wait returns as soon as the reload is seen


@pytest.fixture
def watched(pm: pluggy.PluginManager, template_dir: Path) -> Iterator[TemplateManager]:
    write_template(template_dir, template_doc("note", description="v1"))
    mgr = TemplateManager(
        FactorySettings(template_dirs=[template_dir], hot_reload=True), pm, include_builtin=False
    )
    yield mgr
    mgr.close()


def description_is(mgr: TemplateManager, name: str, expected: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return mgr.get(name).description == expected
        except TemplateError:
            return False

    return check


def generation_is(factory: AgentFactory, n: int) -> Callable[[], bool]:
    return lambda: bool(factory.templates.get("child").parameters["gen"] == n)


def test_edit_is_served_to_the_next_lookup(watched: TemplateManager, template_dir: Path) -> None:
    assert watched.get("note").description == "v1"
    write_template(template_dir, template_doc("note", description="v2"))
    assert watched.wait_for(description_is(watched, "note", "v2"), BOUND_S)
    assert watched.metrics().reloads >= 2


def test_added_file_becomes_available(watched: TemplateManager, template_dir: Path) -> None:
    with pytest.raises(TemplateNotFound):
        watched.get("fresh")
    write_template(template_dir, template_doc("fresh", description="new"), zst=True)
    assert watched.wait_for(description_is(watched, "fresh", "new"), BOUND_S)


def test_deleted_file_disappears(watched: TemplateManager, template_dir: Path) -> None:
    watched.get("note")
    (template_dir / "note.json").unlink()
    assert watched.wait_for(lambda: "note" not in watched.names(), BOUND_S)
    with pytest.raises(TemplateNotFound):
        watched.get("note")


def test_invalid_edit_keeps_the_last_good_version(
    watched: TemplateManager, template_dir: Path
) -> None:
    rejected = threading.Event()
    events: list[ReloadEvent] = []

    def listener(event: ReloadEvent) -> None:
        events.append(event)
        if event.action == "rejected":
            rejected.set()

    watched.on_reload(listener)
    (template_dir / "note.json").write_text('{"name": "note", "version": "not a version"}')
    assert rejected.wait(BOUND_S)
    assert watched.get("note").description == "v1"
    bad = next(e for e in events if e.action == "rejected")
    assert bad.names == ("note",)
    assert bad.error is not None and "version" in bad.error
    assert watched.metrics().current_errors == (str((template_dir / "note.json").resolve()),)
    # a later good edit clears the error
    write_template(template_dir, template_doc("note", description="v3"))
    assert watched.wait_for(description_is(watched, "note", "v3"), BOUND_S)
    assert watched.errors() == {}


def test_agents_created_after_a_reload_use_the_new_content(
    pm: pluggy.PluginManager, template_dir: Path
) -> None:
    write_template(template_dir, template_doc("bot", parameters={"max_chars": 5}))
    settings = FactorySettings(template_dirs=[template_dir], hot_reload=True)
    with AgentFactory(settings, pm, include_builtin_templates=False) as factory:
        before = factory.create_agent("bot")
        write_template(template_dir, template_doc("bot", parameters={"max_chars": 3}))
        assert factory.templates.wait_for(
            lambda: factory.templates.get("bot").parameters["max_chars"] == 3, BOUND_S
        )
        after = factory.create_agent("bot")
        assert after.process({"text": "abcdef"})["text"] == "abc"
        assert before.process({"text": "abcdef"})["text"] == "abcde"  # old agent keeps its template


def test_threads_creating_agents_while_files_change(
    pm: pluggy.PluginManager, template_dir: Path
) -> None:
    def write_generation(n: int) -> None:
        write_template(template_dir, template_doc("parent", parameters={"gen": n}))

    write_generation(0)
    write_template(template_dir, template_doc("child", extends="parent"))
    settings = FactorySettings(template_dirs=[template_dir], hot_reload=True)
    with AgentFactory(settings, pm, include_builtin_templates=False) as factory:
        stop = threading.Event()
        failures: list[BaseException] = []
        created = [0]

        def creator() -> None:
            while not stop.is_set():
                try:
                    agent = factory.create_agent("child")
                    assert isinstance(agent.template.parameters["gen"], int)
                    created[0] += 1
                except BaseException as exc:  # collected and asserted below
                    failures.append(exc)
                    return

        threads = [threading.Thread(target=creator) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            for n in range(1, 6):
                write_generation(n)
                assert factory.templates.wait_for(generation_is(factory, n), BOUND_S)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=BOUND_S)
        assert failures == []
        assert created[0] > 0
