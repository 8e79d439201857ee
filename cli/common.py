"""Shared pieces of the marketplace commands: registry options, output, progress bars.

Invariants: importing this module (or any client command) never imports the server stack
(fastapi, sqlmodel, uvicorn, `registry.service`); `--json` output goes to stdout alone, and
progress bars go to stderr and only when it is a terminal, so scripts can parse stdout.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

import click
from pydantic import BaseModel

from cli.output import build_steps
from marketplace.client.config import ClientConfig, load_config
from marketplace.client.http import ALLOW_HTTP_ENV, MarketplaceClient, Progress

F = TypeVar("F", bound=Callable[..., Any])


def _allow_http(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:  # read by `MarketplaceClient`, like the variable set by hand
        os.environ[ALLOW_HTTP_ENV] = "1"


def registry_options(func: F) -> F:
    """`--url`, `--token` (which override the environment and the config file) and
    `--insecure-http`."""
    func = click.option("--insecure-http", is_flag=True, expose_value=False, callback=_allow_http,
                        help="Allow a plain-http registry URL on another machine (unencrypted: "
                             "anyone on the path can read the token and forge answers).")(func)
    func = click.option("--token", default=None, metavar="TOKEN",
                        help="API token (default: $AGENTFACTORY_TOKEN, then config.json).")(func)
    func = click.option("--url", default=None, metavar="URL",
                        help="Registry URL (default: $AGENTFACTORY_URL, then config.json, "
                             "then http://127.0.0.1:8000).")(func)
    return func


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print machine-readable JSON.")(func)


def config_for(url: str | None, token: str | None) -> ClientConfig:
    return load_config(url=url, token=token)


def client_for(config: ClientConfig) -> MarketplaceClient:
    return MarketplaceClient(config.url, config.token)


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def emit_json(value: Any) -> None:
    click.echo(json.dumps(to_jsonable(value), indent=2, sort_keys=True))


def stars(mean: float | None) -> str:
    if mean is None:
        return "no ratings"
    full = round(mean)
    return "★" * full + "☆" * (5 - full) + f" {mean:.2f}"



def _interactive() -> bool:
    return sys.stderr.isatty()


class DownloadBars:
    """One click progress bar per download, on stderr, only on a terminal."""

    def __init__(self) -> None:
        self._stack = ExitStack()

    def __call__(self, label: str) -> Progress | None:
        if not _interactive():
            return None
        state: dict[str, Any] = {"bar": None, "done": 0}

        def update(received: int, total: int | None) -> None:
            if state["bar"] is None:
                state["bar"] = self._stack.enter_context(click.progressbar(
                    length=total or 0, label=f"downloading {label}", file=sys.stderr))
            state["bar"].update(received - state["done"])
            state["done"] = received

        return update

    def close(self) -> None:
        self._stack.close()


@contextmanager
def sandbox_build_bar() -> Iterator[Callable[[str], None] | None]:
    """Live progress for the first sandbox build (many seconds, once); else nothing.

    On a terminal the build's steps show as live lines with elapsed time (`build_steps`); in a
    pipe the install stays quiet, as it did.
    """
    from sandbox import build

    if build.artifact_path().exists() or not _interactive():
        yield None
        return
    with build_steps() as step:
        yield step
