"""Factory settings as an operator sets them: defaults, the config file, the environment, the
precedence between them, and one clear line for a bad value."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import fields
from pathlib import Path

import pytest

from core import config
from core.agent import Agent
from core.config import DEFAULT_PRELOAD, FactorySettings
from core.errors import ConfigFileError, SettingsError
from core.factory import AgentFactory
from core.hookspecs import hookimpl


def write_config(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_operator_defaults_without_file_or_variables(tmp_path: Path) -> None:
    settings = FactorySettings.from_env({"AGENTFACTORY_HOME": str(tmp_path)})
    assert settings.environment == "development"
    assert settings.cache_ttl_s == 60
    assert settings.preload == list(DEFAULT_PRELOAD)
    assert settings.hot_reload is False
    assert settings.worker_threads == 40
    production = FactorySettings.from_env(
        {"AGENTFACTORY_HOME": str(tmp_path), "AGENTFACTORY_ENVIRONMENT": "production"}
    )
    assert production.cache_ttl_s == 600


def test_the_config_file_in_the_home_sets_every_key(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        """
        [factory]
        environment = "production"
        template_dirs = ["mine", "/abs/theirs"]
        cache_size = 32
        preload = ["hardware"]
        hot_reload = true
        worker_threads = 3
        allowed_tools = ["Shell"]
        sandbox_policy = "high-risk"
        trusted_publishers = ["acme"]

        [server]  # another part's table: left alone
        port = 9000
        """,
    )
    settings = FactorySettings.from_env({"AGENTFACTORY_HOME": str(tmp_path)})
    assert settings.environment == "production" and settings.cache_ttl_s == 600
    assert settings.template_dirs == [tmp_path / "mine", Path("/abs/theirs")]
    assert (settings.cache_size, settings.preload) == (32, ["hardware"])
    assert settings.hot_reload is True and settings.worker_threads == 3
    assert settings.allowed_tools == {"shell"} and settings.trusted_publishers == {"acme"}
    assert settings.sandbox_policy == "high-risk"


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "elsewhere",
        '[factory]\ncache_ttl_s = 120\nhot_reload = true\npreload = ["hardware"]\n',
    )
    env = {
        "AGENTFACTORY_CONFIG": str(path),
        "AGENTFACTORY_CACHE_TTL": "30.5",
        "AGENTFACTORY_HOT_RELOAD": "off",
        "AGENTFACTORY_PRELOAD": "",  # set but empty: preload nothing
        "AGENTFACTORY_WORKER_THREADS": "8",
    }
    settings = FactorySettings.from_env(env)
    assert settings.cache_ttl_s == 30.5 and settings.hot_reload is False
    assert settings.preload == [] and settings.worker_threads == 8
    # A TTL from the file beats the environment's default for it.
    assert FactorySettings.from_env({"AGENTFACTORY_CONFIG": str(path)}).cache_ttl_s == 120


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[factory]\ncache_ttl_s = -5\n",
            "invalid setting factory.cache_ttl_s=-5.0 in {path}: must be a positive number",
        ),
        (
            '[factory]\nworker_threads = "many"\n',
            "invalid setting factory.worker_threads='many' in {path}: must be a whole number",
        ),
        (
            "[factory]\nhot_reload = 2\n",
            "invalid setting factory.hot_reload=2 in {path}: must be true or false",
        ),
        (
            '[factory]\nenvironment = "staging"\n',
            "invalid setting factory.environment='staging' in {path}: "
            "must be one of development, production",
        ),
        (
            "[factory]\ncach_ttl_s = 10\n",
            "invalid setting factory.cach_ttl_s=10 in {path}: no such setting; "
            "did you mean 'cache_ttl_s'",
        ),
        ("[factory]\ncache_size = 0\n", "invalid setting factory.cache_size=0 in {path}"),
        ("[factory\n", "config file {path}: not valid TOML"),
        ("factory = 3\n", "config file {path}: 'factory' must be a table"),
    ],
)
def test_a_bad_value_in_the_file_names_the_key_and_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises((SettingsError, ConfigFileError)) as raised:
        FactorySettings.from_env({"AGENTFACTORY_HOME": str(tmp_path)})
    assert str(raised.value).startswith(message.format(path=path))
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("variable", "text", "message"),
    [
        ("AGENTFACTORY_CACHE_TTL", "soon", "must be a number of seconds"),
        ("AGENTFACTORY_CACHE_TTL", "0", "must be a positive number"),
        ("AGENTFACTORY_WORKER_THREADS", "0", "must be at least 1"),
        ("AGENTFACTORY_HOT_RELOAD", "maybe", "must be true or false"),
        ("AGENTFACTORY_SANDBOX_POLICY", "sometimes", "must be one of always, high-risk, never"),
    ],
)
def test_a_bad_variable_names_the_variable(
    tmp_path: Path, variable: str, text: str, message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        FactorySettings.from_env({"AGENTFACTORY_HOME": str(tmp_path), variable: text})
    assert str(raised.value).startswith(f"invalid setting {variable}=")
    assert f"in the environment: {message}" in str(raised.value)
    assert raised.value.field == variable


def test_a_config_file_named_explicitly_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigFileError, match=f"config file {missing}: no such file"):
        FactorySettings.from_env({"AGENTFACTORY_CONFIG": str(missing)})


def test_every_setting_has_a_variable_a_key_and_a_row_in_the_docs() -> None:
    names = {f.name for f in fields(FactorySettings)}
    assert set(config._COERCE) == set(config._ENV_KEYS) == names
    table = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    for name in names:
        assert f"`factory.{name}`" in table, name
        assert f"`{config._ENV_KEYS[name]}`" in table, name


def test_the_factory_applies_the_settings(tmp_path: Path) -> None:
    write_config(tmp_path, '[factory]\npreload = ["hardware"]\ncache_ttl_s = 5\n')
    settings = FactorySettings.from_env({"AGENTFACTORY_HOME": str(tmp_path)})
    with AgentFactory(settings) as factory:
        assert factory.templates.cached_names() == ["hardware"]  # preloaded
        assert factory.stats().templates.resolve_seconds.count == 1
        factory.create_agent("hardware")
        assert factory.stats().create_seconds.count == 1


class ThreadRecorder:
    """Records the thread each agent was created in."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    @hookimpl
    def agentfactory_agent_created(self, agent: Agent) -> None:
        self.threads.append(threading.current_thread().name)


def test_async_creation_of_a_cold_template_uses_the_worker_threads() -> None:
    recorder = ThreadRecorder()
    with AgentFactory(FactorySettings(worker_threads=1)) as factory:
        factory.register_plugin(recorder, "recorder")

        async def create() -> None:
            await factory.acreate_agent("hardware")  # cold: resolved in a worker thread
            await factory.acreate_agent("hardware")  # warm: created on the event loop

        asyncio.run(create())
    assert recorder.threads[0].startswith("agentfactory-worker")
    assert recorder.threads[1] == threading.current_thread().name
