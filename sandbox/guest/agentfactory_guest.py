"""What sandboxed agent code imports to ask a language model: `from agentfactory_guest import
complete`.

The call crosses the component boundary to the host's `complete` import (runner.wit), which
runs it through the host's model gateway: the guest never holds a key or a URL, may use only
the models its package declares (manifest `models`, plus its template's `model`), and every
call counts against the run's budget, passes the DLP filter and is audited. Bundled in the
runner (imported by `runner.py` at build time); agents may import it like an allowed module.

    answer = complete("fast", [{"role": "user", "content": "Hello"}], max_tokens=100)
    answer["text"], answer["usage"]["output_tokens"]

A refusal raises `ModelCallError` with the gateway's `code` (`model_not_declared`,
`model_not_allowed`, `budget_exceeded`, `dlp_refused`, `model_timeout`, ...). Catching it does
not help an agent past a budget: the host ends that task `budget_exceeded` anyway.
"""

import json

import wit_world
from componentize_py_types import Err


class ModelCallError(Exception):
    """The host refused or could not make the call; `code` says why."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def complete(model, messages, *, max_tokens=None, temperature=None, json_mode=False):
    """Ask `model` (an alias or model id the package declares) with `messages` (a string is one
    user message). Returns {"text": str, "usage": {...}, "masked": [kinds]}."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    options = {"json": bool(json_mode)}
    if max_tokens is not None:
        options["max_tokens"] = max_tokens
    if temperature is not None:
        options["temperature"] = temperature
    try:
        text = wit_world.complete(str(model), json.dumps(messages), json.dumps(options))
    except Err as refused:
        try:
            error = json.loads(refused.value)
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "host_error", str(refused.value)[:500]
        raise ModelCallError(code, message) from None
    return json.loads(text)
