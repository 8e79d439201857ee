"""The template manager: sources and precedence, LRU + TTL cache, metrics, errors, threads."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pluggy
import pytest

from core.config import FactorySettings
from core.errors import TemplateNotFound, TemplateValidationError
from core.hookspecs import hookimpl
from core.manager import TemplateManager
from tests.core.conftest import FakeClock, template_doc, write_template


def manager(
    pm: pluggy.PluginManager, clock: FakeClock, *dirs: Path, **settings: Any
) -> TemplateManager:
    return TemplateManager(
        FactorySettings(template_dirs=list(dirs), **settings),
        pm,
        include_builtin=False,
        clock=clock,
    )


def test_builtin_templates_resolve_including_the_extends_chain(pm: pluggy.PluginManager) -> None:
    mgr = TemplateManager(FactorySettings(), pm)
    for name in ("base_agent", "documentaliste", "genie_logiciel", "hardware"):
        assert mgr.get(name).implementation == name
    analyst = mgr.get("security_analyst")
    assert analyst.lineage == ["security_analyst", "analyst", "base_agent"]
    assert "lowercase" not in analyst.parameters  # removed with $remove
    assert analyst.implementation == "security_analyst"
    assert mgr.errors() == {}


def test_precedence_builtin_then_plugin_then_operator_dirs(
    pm: pluggy.PluginManager, tmp_path: Path
) -> None:
    class Contributes:
        @hookimpl
        def agentfactory_templates(self) -> list[Any]:
            return [
                template_doc("base_agent", description="from plugin"),
                template_doc("plugin_only"),
            ]

    pm.register(Contributes())
    first, second = tmp_path / "first", tmp_path / "second"
    write_template(first, template_doc("base_agent", description="from first"))
    write_template(first, template_doc("shared", description="first"))
    write_template(second, template_doc("shared", description="second"))
    mgr = TemplateManager(FactorySettings(template_dirs=[first, second]), pm)
    assert mgr.get("base_agent").description == "from first"
    assert mgr.get("shared").description == "second"
    assert mgr.get("plugin_only").name == "plugin_only"
    assert "documentaliste" in mgr.names()


def test_operator_child_can_extend_a_builtin(pm: pluggy.PluginManager, template_dir: Path) -> None:
    write_template(template_dir, template_doc("my_analyst", extends="analyst", tools=["grep"]))
    mgr = TemplateManager(FactorySettings(template_dirs=[template_dir]), pm)
    assert mgr.get("my_analyst").tools == ["text_reader", "regex_search", "grep"]


def test_cache_hits_misses_and_metrics(
    pm: pluggy.PluginManager, clock: FakeClock, template_dir: Path
) -> None:
    write_template(template_dir, template_doc("one"))
    write_template(template_dir, template_doc("two", extends="one"))
    mgr = manager(pm, clock, template_dir)
    first = mgr.get("two")
    assert mgr.get("two") is first  # served from the cache, same snapshot
    mgr.get("two")
    metrics = mgr.metrics()
    assert (metrics.cache_hits, metrics.cache_misses) == (2, 1)
    assert metrics.hit_rate == pytest.approx(2 / 3)
    assert metrics.templates_loaded == 2
    assert metrics.reloads == 1
    assert metrics.load_latency_us > 0 and metrics.resolve_latency_us > 0
    assert metrics.errors == 0


def test_lru_evicts_the_least_recently_used(
    pm: pluggy.PluginManager, clock: FakeClock, template_dir: Path
) -> None:
    for name in ("a", "b", "c"):
        write_template(template_dir, template_doc(name))
    mgr = manager(pm, clock, template_dir, cache_size=2)
    mgr.get("a")
    mgr.get("b")
    mgr.get("a")  # b is now least recently used
    mgr.get("c")
    assert mgr.cached_names() == ["a", "c"]
    assert mgr.metrics().cache_evictions == 1


def test_ttl_expiry_is_driven_by_the_clock(
    pm: pluggy.PluginManager, clock: FakeClock, template_dir: Path
) -> None:
    write_template(template_dir, template_doc("t"))
    mgr = manager(pm, clock, template_dir, cache_ttl_s=60)
    first = mgr.get("t")
    clock.advance(59)
    assert mgr.get("t") is first
    clock.advance(2)
    assert mgr.get("t") is not first  # re-resolved after expiry
    metrics = mgr.metrics()
    assert (metrics.cache_hits, metrics.cache_misses, metrics.cache_expirations) == (1, 2, 1)


def test_without_watcher_an_expired_entry_picks_up_an_edited_file(
    pm: pluggy.PluginManager, clock: FakeClock, template_dir: Path
) -> None:
    path = write_template(template_dir, template_doc("t", description="old"))
    mgr = manager(pm, clock, template_dir, cache_ttl_s=10)
    assert mgr.get("t").description == "old"
    write_template(template_dir, template_doc("t", description="new"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert mgr.get("t").description == "old"  # still fresh in the cache
    clock.advance(11)
    assert mgr.get("t").description == "new"


def test_preload_resolves_at_start_and_fails_fast(
    pm: pluggy.PluginManager, clock: FakeClock, template_dir: Path
) -> None:
    write_template(template_dir, template_doc("warm"))
    mgr = manager(pm, clock, template_dir, preload=["warm"])
    assert mgr.cached_names() == ["warm"]
    with pytest.raises(TemplateNotFound, match="'cold'"):
        manager(pm, clock, template_dir, preload=["cold"])


def test_broken_file_is_reported_and_explains_the_miss(
    pm: pluggy.PluginManager, clock: FakeClock, template_dir: Path
) -> None:
    write_template(template_dir, template_doc("good"))
    (template_dir / "bad.json").write_text('{"name": "bad", "version": "1.0", "tools": ["a", {}]}')
    mgr = manager(pm, clock, template_dir)
    assert mgr.get("good").name == "good"
    assert list(mgr.errors()) == [str((template_dir / "bad.json").resolve())]
    with pytest.raises(TemplateValidationError, match=r"bad\.json: tools\[1\]"):
        mgr.get("bad")
    metrics = mgr.metrics()
    assert metrics.current_errors == (str((template_dir / "bad.json").resolve()),)
    assert metrics.errors == 2  # the load error and the failed lookup


def test_threads_never_see_a_torn_template(
    pm: pluggy.PluginManager, clock: FakeClock, template_dir: Path
) -> None:
    """Parent and child are edited together; every resolution must come from one generation."""

    def write_generation(n: int) -> None:
        write_template(
            template_dir, template_doc("parent", description=f"gen{n}", parameters={"gen": n})
        )
        write_template(
            template_dir, template_doc("child", extends="parent", prompts={"gen": f"gen{n}"})
        )

    write_generation(0)
    mgr = manager(pm, clock, template_dir, cache_size=4)
    stop = threading.Event()
    torn: list[str] = []
    seen: set[int] = set()

    def reader() -> None:
        while not stop.is_set():
            template = mgr.get("child")
            gen = template.parameters["gen"]
            seen.add(gen)
            if template.prompts["gen"] != f"gen{gen}" or template.description != f"gen{gen}":
                torn.append(f"{template.prompts} vs {template.parameters}")

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for n in range(1, 40):
            write_generation(n)
            mgr.reload()  # one snapshot holding both files
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert torn == []
    assert mgr.get("child").parameters["gen"] == 39
    assert len(seen) > 1
