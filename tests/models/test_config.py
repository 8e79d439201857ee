"""The models configuration: where it is read from, and every mistake named with its file."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.config import Target, load_config, parse_config
from models.errors import ModelsConfigError
from models.keys import REDACTED, remember, scrub


def test_no_file_is_an_empty_configuration(tmp_path: Path) -> None:
    config = load_config({"AGENTFACTORY_HOME": str(tmp_path)})
    assert config.aliases == {} and config.dlp == "off"


def test_models_toml_wins_over_the_config_tables(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[models.aliases]\nfast = ["openai:a"]\n')
    env = {"AGENTFACTORY_HOME": str(tmp_path)}
    assert load_config(env).aliases["fast"].targets == (Target("openai", "a"),)
    (tmp_path / "models.toml").write_text('[aliases]\nfast = ["vllm:b", "openai:a"]\n')
    assert [str(t) for t in load_config(env).aliases["fast"].targets] == ["vllm:b", "openai:a"]


@pytest.mark.parametrize(("document", "key", "reason"), [
    ({"timout_s": 3}, "timout_s", "did you mean 'timeout_s'?"),
    ({"timeout_s": 0}, "timeout_s", "must be a positive number"),
    ({"retries": -1}, "retries", "must be a non-negative whole number"),
    ({"retries": 1.5}, "retries", "whole number"),
    ({"dlp": "maybe"}, "dlp", "must be one of off, mask, refuse"),
    ({"aliases": {"fast": []}}, "aliases.fast.models", "non-empty list"),
    ({"aliases": {"fast": {"models": ["a"], "retry": 1}}}, "aliases.fast.retry", "no such"),
    ({"providers": {"x": {"api_base": ""}}}, "providers.x.api_base", "non-empty string"),
    ({"providers": {"x": {"api_key": "sk-oops"}}}, "providers.x.api_key", "no such setting"),
    ({"budgets": {"run_tokens": 1.5}}, "budgets.run_tokens", "whole number"),
    ({"budgets": {"day_cost": 1}}, "budgets.day_cost", "no such setting"),
    ({"prices": {"m": {"input_per_1k": "cheap"}}}, "prices.m.input_per_1k", "non-negative number"),
])
def test_mistakes_name_the_key_and_the_file(document: dict[str, object], key: str,
                                            reason: str) -> None:
    with pytest.raises(ModelsConfigError) as caught:
        parse_config(document, "/etc/models.toml")
    assert caught.value.key == key
    assert reason in str(caught.value) and "in /etc/models.toml" in str(caught.value)


def test_a_bad_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "models.toml").write_text("[aliases\n")
    with pytest.raises(ModelsConfigError, match="not valid TOML"):
        load_config({"AGENTFACTORY_HOME": str(tmp_path)})


def test_scrub_removes_known_keys_and_key_shapes() -> None:
    remember("plain-secret-value-42")
    text = scrub("got plain-secret-value-42 and Bearer abcdefgh12345678 and sk-live1234567890")
    assert "plain-secret-value-42" not in text and "abcdefgh12345678" not in text
    assert "sk-live1234567890" not in text and text.count(REDACTED) == 3
