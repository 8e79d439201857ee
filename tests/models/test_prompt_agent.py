"""Prompt agents: templates with a role, prompts and a model, run by the factory and the CLI
against the local OpenAI-compatible server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from core.agent import Agent
from core.config import ENV_TEMPLATE_PATH, FactorySettings
from core.errors import TemplateVetoed
from core.factory import AgentFactory
from models.context import calling
from models.errors import NoProviderConfigured, OutputInvalid, PromptFieldMissing
from models.gateway import ModelGateway
from models.types import CallContext
from tests.core.conftest import write_template
from tests.models.openai_stub_server import Answer, StubServer


def prompt_template(name: str = "summarizer", **fields: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": name, "version": "1.0.0", "implementation": "prompt",
        "role": "You summarize documents.",
        "model": {"provider": "local", "name": "fast", "parameters": {"max_tokens": 50}},
        "prompts": {"system": "Audience: {audience}.", "user": "Summarize:\n{text}"},
    }
    document.update(fields)
    return document


class Factory:
    """Builds the factory over `directory` on first use, after the test wrote its templates."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.built: AgentFactory | None = None

    def create_agent(self, name: str) -> Agent:
        if self.built is None:
            self.built = AgentFactory(FactorySettings(template_dirs=[self.directory]))
        return self.built.create_agent(name)


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[Factory]:
    made = Factory(tmp_path)
    yield made
    if made.built is not None:
        made.built.close()


def test_a_prompt_agent_renders_its_prompts_and_returns_text_and_usage(
    factory: Factory, tmp_path: Path, stub: StubServer,
    make_gateway: Callable[..., ModelGateway],
) -> None:
    write_template(tmp_path, prompt_template())
    stub.script = [Answer(text="A short summary.")]
    agent = factory.create_agent("summarizer")
    with calling(CallContext(account="acct", run_id="run-1"), make_gateway()):
        result = agent.process({"text": "Long text.", "audience": "engineers"})
    assert result["text"] == "A short summary."
    usage = result["usage"]
    assert usage["model"] == "m1" and usage["provider"] == "stub" and usage["calls"] == 1
    assert usage["input_tokens"] > 0 and usage["output_tokens"] == 3 and usage["cost"] > 0
    sent = stub.requests[0].body
    assert sent["messages"] == [
        {"role": "system", "content": "You summarize documents.\n\nAudience: engineers."},
        {"role": "user", "content": "Summarize:\nLong text."},
    ]
    assert sent["max_tokens"] == 50


def test_a_dotted_field_reads_object_keys_never_attributes(
    factory: Factory, tmp_path: Path, stub: StubServer,
    make_gateway: Callable[..., ModelGateway],
) -> None:
    write_template(tmp_path, prompt_template(role="", prompts={"user": "{doc.title} {{x}}"}))
    with calling(gateway=make_gateway()):
        factory.create_agent("summarizer").process({"doc": {"title": "T"}})
        with pytest.raises(PromptFieldMissing, match=r"needs task field 'doc\.title'"):
            factory.create_agent("summarizer").process({"doc": "a string has no keys"})
    assert stub.requests[0].prompt_text == "T {x}"
    assert len(stub.requests) == 1


def test_a_missing_field_names_it(
    factory: Factory, tmp_path: Path, stub: StubServer,
    make_gateway: Callable[..., ModelGateway],
) -> None:
    write_template(tmp_path, prompt_template())
    with calling(gateway=make_gateway()), pytest.raises(PromptFieldMissing) as caught:
        factory.create_agent("summarizer").process({"text": "x"})
    assert str(caught.value) == (
        "summarizer: prompt 'system' needs task field 'audience' (the task has: text)")
    assert stub.requests == []


@pytest.mark.parametrize(("prompt", "reason"), [
    ("{text[0]}", "is not a placeholder"),
    ("{text!r}", "is not a placeholder"),
    ("{text:>10}", "is not a placeholder"),
    ("{0}", "is not a placeholder"),
    ("unclosed {text", "literal braces"),
])
def test_prompts_that_would_reach_into_objects_are_refused_at_load(
    factory: Factory, tmp_path: Path, prompt: str, reason: str
) -> None:
    write_template(tmp_path, prompt_template(prompts={"user": prompt}))
    with pytest.raises(TemplateVetoed) as caught:
        factory.create_agent("summarizer")
    assert reason in str(caught.value)


def test_an_invalid_output_schema_is_refused_at_load(
    factory: Factory, tmp_path: Path
) -> None:
    write_template(tmp_path, prompt_template(output_schema={"type": "nothing"}))
    with pytest.raises(TemplateVetoed, match=r"output_schema is not a valid JSON Schema"):
        factory.create_agent("summarizer")


SCHEMA = {"type": "object", "required": ["title", "score"],
          "properties": {"title": {"type": "string"}, "score": {"type": "integer"}}}


def test_output_schema_retries_a_bad_answer_then_returns_validated_json(
    factory: Factory, tmp_path: Path, stub: StubServer,
    make_gateway: Callable[..., ModelGateway],
) -> None:
    write_template(tmp_path, prompt_template(output_schema=SCHEMA, prompts={"user": "{text}"},
                                             role=""))
    stub.script = [Answer(text='{"title": "x", "score": "high"}'),
                   Answer(text='```json\n{"title": "x", "score": 9}\n```')]
    with calling(gateway=make_gateway()):
        result = factory.create_agent("summarizer").process({"text": "rate this"})
    assert result["output"] == {"title": "x", "score": 9}
    assert result["usage"]["calls"] == 2
    first, second = stub.requests
    assert first.body["response_format"] == {"type": "json_object"}
    assert '"required":["title","score"]' in first.body["messages"][0]["content"]
    assert "score: 'high' is not of type 'integer'" in second.body["messages"][-1]["content"]


def test_output_schema_gives_up_after_the_attempts_naming_what_failed(
    factory: Factory, tmp_path: Path, stub: StubServer,
    make_gateway: Callable[..., ModelGateway],
) -> None:
    template = prompt_template(output_schema=SCHEMA, prompts={"user": "{text}"})
    template["model"]["parameters"]["output_attempts"] = 2
    write_template(tmp_path, template)
    stub.script = [Answer(text="not json at all"), Answer(text='{"title": 3}')]
    with calling(gateway=make_gateway()), pytest.raises(OutputInvalid) as caught:
        factory.create_agent("summarizer").process({"text": "rate this"})
    assert caught.value.attempts == 2
    assert caught.value.errors == ("(root): 'score' is a required property",
                                   "title: 3 is not of type 'string'")
    assert len(stub.requests) == 2


# ----------------------------------------------------------------- the CLI


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    templates = tmp_path / "templates"
    home.mkdir()
    templates.mkdir()
    monkeypatch.setenv("AGENTFACTORY_HOME", str(home))
    monkeypatch.setenv(ENV_TEMPLATE_PATH, str(templates))
    monkeypatch.delenv("AGENTFACTORY_CONFIG", raising=False)
    monkeypatch.delenv("AGENTFACTORY_MODELS", raising=False)
    write_template(templates, prompt_template(prompts={"user": "{text}"}))
    (tmp_path / "in.txt").write_text("Tell me something.", encoding="utf-8")
    return home


def test_cli_run_streams_tokens_and_prints_the_result(
    capsys: pytest.CaptureFixture[str], cli_home: Path, stub: StubServer
) -> None:
    (cli_home / "models.toml").write_text(
        f'[aliases]\nfast = ["stub:m1"]\n[providers.stub]\napi_base = "{stub.api_base}"\n',
        encoding="utf-8")
    stub.script = [Answer(text="Streamed answer here")]
    code, out, err = run_cli(capsys, "run", "summarizer", "--input",
                             str(cli_home.parent / "in.txt"))
    assert code == 0, err
    assert err == "Streamed answer here\n"
    result = json.loads(out)
    assert result["text"] == "Streamed answer here"
    assert result["usage"]["output_tokens"] == 3
    assert stub.requests[0].body["stream"] is True
    code, out, err = run_cli(capsys, "usage", "--json")
    assert code == 0, err
    [row] = json.loads(out)["rows"]
    assert (row["model"], row["agent"], row["calls"]) == ("m1", "summarizer", 1)


def test_cli_run_without_a_provider_is_one_line(
    capsys: pytest.CaptureFixture[str], cli_home: Path
) -> None:
    code, out, err = run_cli(capsys, "run", "summarizer", "--input",
                             str(cli_home.parent / "in.txt"))
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "no language model is configured for 'fast'" in err
    assert "models.toml" in err


def test_the_error_type_is_what_the_agent_raises(
    factory: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTFACTORY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AGENTFACTORY_MODELS", str(tmp_path / "empty.toml"))
    (tmp_path / "empty.toml").write_text("", encoding="utf-8")
    write_template(tmp_path, prompt_template(prompts={"user": "{text}"}))
    with pytest.raises(NoProviderConfigured):
        factory.create_agent("summarizer").process({"text": "x"})
