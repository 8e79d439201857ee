"""Model calls from sandboxed code: the host side of the runner's `complete` import.

Guest code calls `agentfactory_guest.complete(model, messages, ...)`; the runner's WIT import
`complete(model, messages, options) -> result<string, string>` lands in the host
(`sandbox.engine`), which asks the `ModelHost` of the task. Where that host lives:

- in-process isolation: the engine calls the caller's `ModelHost` directly;
- worker processes (the default): the engine in the worker holds a `PipeHost`, which forwards
  the call over the worker's pipe to the parent (`sandbox.pool`), and the parent asks the
  caller's `ModelHost`. The gateway, its keys, the run's budget reservations, the audit sink
  and the caller's `on_usage` all stay in the one process that owns the run, so a run's budget
  is counted in one place whichever worker runs its tasks; a worker process never holds a key
  (it is started with a minimal environment) and never reaches a provider.

`GatewayHost` is the `ModelHost` of an installed agent whose package declares model use
(`sandbox.plugin`; `NotDeclared` refuses every call of the others): every call goes
through `ModelGateway.complete` with the agent's `CallContext` — only the models the package
declares (manifest `models`, plus the template's `model`), the run's budgets, the DLP policy,
audit events. Its invariants:

- a package that declares no model use gets `model_not_declared` for every call, nothing is
  sent anywhere and the model layer is not even loaded;
- no call outlasts the task's deadline: the gateway gets the task's remaining time as the
  call's timeout (`CompletionRequest.timeout_s`), and a call with no time left is refused;
- the first `budget_exceeded` of a task is kept (`failure`): every later call of the task is
  refused with it, and the task ends `budget_exceeded` whatever the guest does with the error;
- `complete` never raises: every refusal is an `err` answer `{"code", "message"}` (the guest's
  `ModelCallError`), every success `{"text", "usage", "masked"}`.

Wire format between a worker and its parent (one `Connection` frame each): the worker sends
`{"host": "complete", "remaining_s": float}\\n` + JSON `[model, messages, options]`; the parent
answers `ok\\n` + completion JSON or `err\\n` + error JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from core.resolved import ResolvedTemplate
    from models.errors import ModelError
    from models.gateway import ModelGateway
    from models.types import CallContext

MAX_REQUEST_BYTES = 1 << 20
"""The largest model call a guest may send (model, messages and options on the wire)."""
MAX_ANSWER_BYTES = 16 << 20
"""The largest answer a worker accepts from its parent."""
DETERMINISTIC = "deterministic"  # a template's model when it names none (`core.template`)
OPTIONS = ("max_tokens", "temperature", "json")
ROLES = ("system", "user", "assistant")
_HOST_HEADER = b'{"host":'


@dataclass(frozen=True, slots=True)
class HostAnswer:
    """What the guest's `complete` returns: `ok` and the completion JSON, or the error JSON."""

    ok: bool
    text: str

    @classmethod
    def refuse(cls, code: str, message: str) -> HostAnswer:
        return cls(False, json.dumps({"code": code, "message": message}))


class ModelHost(Protocol):
    """Answers a guest's model calls for one task (or one request of tasks)."""

    def complete(
        self, model: str, messages: str, options: str, remaining_s: float
    ) -> HostAnswer: ...


class NotDeclared:
    """The host of a package that declares no model use: every call is refused, and nothing
    of the model layer is even loaded."""

    def __init__(self, package: str) -> None:
        self.package = package

    def complete(
        self, model: str, messages: str, options: str, remaining_s: float
    ) -> HostAnswer:
        return HostAnswer.refuse(
            "model_not_declared",
            f"package {self.package} declares no model use: list the models its code calls "
            'in its agent.json ("models": ["fast"])',
        )


class Unavailable:
    """The host of code given no models (vetting, `agentfactory sandbox run`, tests)."""

    def complete(
        self, model: str, messages: str, options: str, remaining_s: float
    ) -> HostAnswer:
        return HostAnswer.refuse(
            "models_unavailable",
            "language models are not available to this sandboxed code (only installed agents "
            "whose package declares \"models\" get them, and never while vetting)",
        )


UNAVAILABLE = Unavailable()


# ----------------------------------------------------------------- the worker <-> parent wire


@dataclass(frozen=True, slots=True)
class HostCall:
    """A guest's call, as a worker forwards it to its parent."""

    model: str
    messages: str
    options: str
    remaining_s: float

    def to_wire(self) -> bytes:
        header = json.dumps({"host": "complete", "remaining_s": self.remaining_s})
        body = json.dumps([self.model, self.messages, self.options])
        return header.encode() + b"\n" + body.encode()

    @classmethod
    def from_wire(cls, data: bytes) -> HostCall | None:
        """The call `data` holds, or None when it is not a well-formed host call (then it is
        read as a task's step, and anything else is garbage there)."""
        if not data.startswith(_HOST_HEADER):
            return None
        head, _, body = data.partition(b"\n")
        try:
            remaining = float(json.loads(head)["remaining_s"])
            model, messages, options = json.loads(body)
            if not all(isinstance(v, str) for v in (model, messages, options)):
                raise TypeError("not strings")
        except (ValueError, KeyError, TypeError, RecursionError):
            return None
        if not math.isfinite(remaining):
            remaining = 0.0
        return cls(model, messages, options, remaining)


def answer_to_wire(answer: HostAnswer) -> bytes:
    return (b"ok\n" if answer.ok else b"err\n") + answer.text.encode("utf-8", "replace")


def answer_from_wire(data: bytes) -> HostAnswer:
    status, _, body = data.partition(b"\n")
    text = body.decode("utf-8", "replace")
    if status == b"ok":
        return HostAnswer(True, text)
    if status == b"err":
        return HostAnswer(False, text)
    return HostAnswer.refuse("host_error", "the sandbox host sent an unreadable answer")


class PipeHost:
    """The `ModelHost` inside a worker: forwards each call to the parent and waits for its
    answer (the parent bounds the call by the task's remaining time)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def complete(
        self, model: str, messages: str, options: str, remaining_s: float
    ) -> HostAnswer:
        wire = HostCall(model, messages, options, remaining_s).to_wire()
        if len(wire) > MAX_REQUEST_BYTES:
            return HostAnswer.refuse(
                "request_too_large", f"a model call is at most {MAX_REQUEST_BYTES} bytes as JSON"
            )
        self.conn.send_bytes(wire)
        return answer_from_wire(self.conn.recv_bytes(MAX_ANSWER_BYTES))


# ----------------------------------------------------------------- the gateway's host


@dataclass
class GatewayHost:
    """The `ModelHost` of one task of an installed agent (see the module doc)."""

    gateway: ModelGateway
    context: CallContext  # agent, allowed models, DLP policy, account, run, on_usage
    calls: int = 0
    failure: ModelError | None = field(default=None)

    def complete(
        self, model: str, messages: str, options: str, remaining_s: float
    ) -> HostAnswer:
        from models.errors import BudgetExceeded, ModelError, ModelTimeout

        if self.failure is not None:
            return HostAnswer.refuse(self.failure.code, str(self.failure))
        try:
            request = self._request(model, messages, options, remaining_s)
        except ValueError as exc:
            return HostAnswer.refuse("invalid_model_call", str(exc))
        if remaining_s <= 0:
            return HostAnswer.refuse(ModelTimeout.code, "the task's deadline has passed")
        self.calls += 1
        try:
            completion = self.gateway.complete(request)
        except BudgetExceeded as exc:
            self.failure = exc
            return HostAnswer.refuse(exc.code, str(exc))
        except ModelError as exc:
            return HostAnswer.refuse(exc.code, str(exc))
        return HostAnswer(True, json.dumps({
            "text": completion.text, "usage": completion.usage.as_dict(),
            "masked": list(completion.masked),
        }))

    def _request(self, model: str, messages: str, options: str, remaining_s: float) -> Any:
        from models.types import CompletionRequest, Message

        try:
            turns, settings = json.loads(messages), json.loads(options)
        except ValueError:
            raise ValueError("messages and options must be JSON") from None
        if not isinstance(turns, list) or not turns:
            raise ValueError("messages must be a non-empty list of {role, content}")
        parsed = []
        for index, turn in enumerate(turns):
            if not (isinstance(turn, dict) and turn.get("role") in ROLES
                    and isinstance(turn.get("content"), str) and len(turn) == 2):
                raise ValueError(f"messages[{index}] must be {{\"role\": one of "
                                 f"{', '.join(ROLES)}, \"content\": text}}")
            parsed.append(Message(turn["role"], turn["content"]))
        if not isinstance(settings, dict) or any(key not in OPTIONS for key in settings):
            raise ValueError(f"options may hold only {', '.join(OPTIONS)}")
        max_tokens = settings.get("max_tokens")
        if max_tokens is not None and (isinstance(max_tokens, bool)
                                       or not isinstance(max_tokens, int) or max_tokens < 1):
            raise ValueError(f"max_tokens must be a positive integer, not {max_tokens!r}")
        temperature = settings.get("temperature")
        if temperature is not None and (isinstance(temperature, bool)
                                        or not isinstance(temperature, int | float)):
            raise ValueError(f"temperature must be a number, not {temperature!r}")
        return CompletionRequest(
            model, tuple(parsed), max_tokens=max_tokens, temperature=temperature,
            json_mode=bool(settings.get("json", False)), context=self.context,
            timeout_s=max(remaining_s, 0.001),
        )


def gateway_host(declared: Sequence[str], template: ResolvedTemplate) -> GatewayHost:
    """The host of one task of the agent made from `template`, whose package declares the
    models `declared` (not empty), for the caller's gateway and context (`models.context`):
    allowed models are the `declared` ones plus the template's own `model`, the DLP policy is
    the template's; nothing is streamed to the caller (the guest's calls are its own)."""
    from models.context import current_context, current_gateway
    from models.prompt_agent import model_name
    from models.types import DLP_POLICIES

    own = (model_name(template),) if template.model.name != DETERMINISTIC else ()
    dlp = template.model.parameters.get("dlp")
    context = replace(
        current_context(), agent=template.name,
        allowed_models=tuple(dict.fromkeys((*declared, *own))),
        dlp=dlp if dlp in DLP_POLICIES else None, on_token=None,
    )
    return GatewayHost(current_gateway(), context)
