"""Publishing workflow packages: the registry refuses what the factory would refuse at load, and
accepts a package of workflows with no code of its own."""

from __future__ import annotations

import json
from typing import Any

import pytest

from registry.archive import build_files, read_archive
from registry.errors import ManifestError, NotFound
from registry.service import Registry
from tests.registry.factories import TestPublisher, package_files, sign


def workflow_package(steps: list[dict[str, Any]], **manifest: Any) -> dict[str, bytes]:
    """`acme/pipeline`: one workflow template, plus `acme/helper`, a plain agent; no process.py
    and no examples unless `manifest` says otherwise."""
    files = package_files("acme/pipeline", template_names=["acme/pipeline", "acme/helper"],
                          manifest={"examples": [], **manifest})
    del files["process.py"]
    files["templates/pipeline.json"] = json.dumps({
        "name": "acme/pipeline", "version": "1.0.0", "workflow": {"steps": steps},
    }).encode()
    return files


def publish_files(registry: Registry, pub: TestPublisher, files: dict[str, bytes]) -> Any:
    archive = build_files(files) if "process.py" in files else _pack(files)
    return registry.publish(pub.principal, archive, sign(pub, archive, "acme/pipeline", "1.0.0"),
                            pub.key.key_id)


def _pack(files: dict[str, bytes]) -> bytes:
    from registry.archive import pack_files

    return pack_files(files)


def test_a_package_of_workflows_needs_no_code(registry: Registry, acme: TestPublisher) -> None:
    files = workflow_package([
        {"name": "mask", "agent": "security_analyst", "version": ">=1.0"},
        {"name": "summarize", "agent": "documentaliste",
         "input": {"text": {"from": "/steps/mask/output/masked_text"}}},
    ])
    files["process.py"] = b"def process(task):\n    return task\n"  # the helper's code
    release = publish_files(registry, acme, files)
    assert release.version == "1.0.0"

    only_workflows = workflow_package([{"name": "mask", "agent": "security_analyst"}],
                                      templates=["templates/pipeline.json"])
    del only_workflows["templates/helper.json"]
    package = read_archive(_pack(only_workflows))
    assert package.templates[0].implementation == "workflow"
    assert "process.py" not in package.files


@pytest.mark.parametrize(("steps", "requires", "message"), [
    ([{"name": "s", "agent": "acme/ghost"}], {},
     "templates/pipeline.json: workflow.steps[0].agent: step 's': no agent named 'acme/ghost'"),
    ([{"name": "s", "agent": "documentaliste", "version": ">=2"}], {},
     "step 's': documentaliste 1.0.0 does not satisfy '>=2'"),
    ([{"name": "s", "agent": "acme/pipeline"}], {},
     "step 's': workflows call each other: acme/pipeline -> acme/pipeline"),
])
def test_a_workflow_naming_an_agent_nobody_provides_is_refused(
    registry: Registry, acme: TestPublisher, steps: list[dict[str, Any]],
    requires: dict[str, str], message: str,
) -> None:
    files = workflow_package(steps, requires=requires)
    files["process.py"] = b"def process(task):\n    return task\n"
    with pytest.raises(ManifestError) as caught:
        publish_files(registry, acme, files)
    assert message in str(caught.value)
    with pytest.raises(NotFound):  # nothing was stored
        registry.releases("acme/pipeline")


def test_a_step_may_name_the_package_own_agents_and_required_packages(
    registry: Registry, acme: TestPublisher
) -> None:
    files = workflow_package(
        [{"name": "own", "agent": "acme/helper", "version": "==1.0.0"},
         {"name": "other", "agent": "beta/cleaner"}],
        requires={"beta/cleaner": ">=1"},
    )
    files["process.py"] = b"def process(task):\n    return task\n"
    assert publish_files(registry, acme, files).version == "1.0.0"


@pytest.mark.parametrize(("steps", "message"), [
    ([{"name": "x", "agent": "documentaliste", "after": ["y"]},
      {"name": "y", "agent": "documentaliste", "after": ["x"]}], "steps form a cycle: x -> y -> x"),
    ([{"name": "x", "agent": "documentaliste", "after": ["z"]}], "after: unknown step 'z'"),
])
def test_a_workflow_with_a_cycle_or_an_unknown_step_is_refused(
    registry: Registry, acme: TestPublisher, steps: list[dict[str, Any]], message: str
) -> None:
    files = workflow_package(steps)
    files["process.py"] = b"def process(task):\n    return task\n"
    with pytest.raises(ManifestError, match=message):
        publish_files(registry, acme, files)


def test_a_package_with_a_plain_agent_still_needs_its_code(
    registry: Registry, acme: TestPublisher
) -> None:
    files = workflow_package([{"name": "s", "agent": "documentaliste"}])
    with pytest.raises(ManifestError, match=r"'process\.py' is not in the package"):
        publish_files(registry, acme, files)


def test_a_package_of_workflows_declares_no_examples(
    registry: Registry, acme: TestPublisher
) -> None:
    files = workflow_package([{"name": "s", "agent": "documentaliste"}],
                             templates=["templates/pipeline.json"],
                             examples=[{"name": "e", "input": {"text": "hi"}}])
    del files["templates/helper.json"]
    with pytest.raises(ManifestError, match="a package of workflows has no process"):
        publish_files(registry, acme, files)
