"""The tool deny-list.

A template asking for a tool on `DENIED_TOOLS` is refused by the built-in validator plugin
(`plugins.security_validator`) and by the registry at publish, unless the operator lists the tool
in `FactorySettings.allowed_tools` (`RegistryConfig.allowed_tools` for the registry).

Tools are matched on what they name, not on how they are spelled. A tool name is folded (NFKC,
format characters such as zero-width spaces dropped, camelCase split, lower case) into words
split at any separator; a word, or two or three adjacent words glued together, that is a denied
root (`ROOTS`: `shell`, `sh`, `bash`, `subprocess`, `popen`, `ossystem`, `http`, `curl`,
`socket`, `fs`, `filewrite`, `webrequest`, ...) once common affixes are peeled off both ends
(`AFFIXES`: `run`, `exec`, `get`, `tool`, `unsafe`, ...) makes the tool a member of that root's
family, a `DENIED_TOOLS` entry. So `Shell`, `run-shell`, `shell_exec`, `os.system`, `runShell`,
`http_get`, `fs_write`, `network_request` and fullwidth `shell` are all denied, while
`shellfish_db`, `hash` or `regex_search` are not (a root must be a whole word once affixes are
peeled). The registry also refuses tool names outside a plain ASCII alphabet at publish
(`registry.checks`), so look-alike letters cannot dodge this.

Allowing: an operator entry that names a family (`shell`) allows every member of it and every
name qualified by it (`shell:bash`); any other entry (`shell:ls`) allows exactly that tool,
compared in folded form. A tool in several families (`bash_exec`) is allowed only when each
family is.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

DENIED_TOOLS: frozenset[str] = frozenset(
    {
        # running arbitrary commands
        "shell",
        "bash",
        "exec",
        "subprocess",
        "terminal",
        "python_exec",
        # unrestricted network access
        "network",
        "http",
        "socket",
        "web_request",
        # unrestricted filesystem access
        "filesystem",
        "file_write",
        "file_delete",
    }
)

# Folded spelling (words glued, no separators) -> the DENIED_TOOLS family it belongs to.
ROOTS: dict[str, str] = {
    **{root: "shell" for root in (
        "shell", "sh", "zsh", "ksh", "csh", "powershell", "pwsh", "cmd", "ssh", "ossystem",
        "runcommand", "execcommand", "shellcommand",
    )},
    "bash": "bash",
    **{root: "exec" for root in ("exec", "execute", "execve", "execvp")},
    **{root: "subprocess" for root in ("subprocess", "popen", "subproc")},
    "terminal": "terminal",
    **{root: "python_exec" for root in ("pythonexec", "pyexec", "execpython", "runpython",
                                        "pythoneval", "pyeval")},
    **{root: "network" for root in ("network", "tcp", "udp")},
    **{root: "http" for root in ("http", "https", "httpx", "curl", "wget", "urlopen", "urllib",
                                 "urlfetch", "fetchurl")},
    **{root: "socket" for root in ("socket", "sockets", "websocket", "rawsocket")},
    **{root: "web_request" for root in ("webrequest", "webfetch", "webget")},
    **{root: "filesystem" for root in ("filesystem", "fs")},
    **{root: "file_write" for root in ("filewrite", "writefile", "fileappend", "appendfile",
                                       "savefile", "filesave", "filecreate", "createfile")},
    **{root: "file_delete" for root in ("filedelete", "deletefile", "fileremove", "removefile",
                                        "rmfile", "unlink", "rmdir", "rmrf")},
}

# Words that only qualify a root: peeled off either end before the remainder is looked up.
AFFIXES: tuple[str, ...] = (
    "run", "runs", "do", "exec", "execute", "call", "invoke", "use", "get", "post", "put",
    "patch", "head", "read", "write", "delete", "remove", "open", "tool", "tools", "unsafe",
    "raw", "sys", "system", "os", "cmd", "command", "request", "fetch", "client", "api",
    "local", "remote", "any", "all", "access", "async", "sync", "plugin", "py", "python",
)

_WORD_SEPARATOR = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_FAMILY_SEPARATOR = re.compile(r"[:./]")
_MAX_GLUED = 3
_MAX_ROOT_CHARS = 64  # longer glued words are not peeled (keeps the search small)


def fold(tool: str) -> str:
    """NFKC, format characters (zero-width, BOM, bidi overrides) dropped, stripped, lower case."""
    text = unicodedata.normalize("NFKC", tool)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return text.strip().lower()


def _words(tool: str) -> list[str]:
    text = unicodedata.normalize("NFKC", tool)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return [w for w in _WORD_SEPARATOR.split(_CAMEL.sub(" ", text).lower()) if w]


def _qualified_family(tool: str) -> str:
    """`shell` for `shell:ls` or `shell.rm`: a qualified name's first segment."""
    return _FAMILY_SEPARATOR.split(fold(tool), maxsplit=1)[0]


@lru_cache(maxsize=4096)
def _root(glued: str) -> str | None:
    """The family of `glued` once affixes are peeled off its ends, or None. Every peel makes
    the text shorter and results are cached, so this visits each substring at most once."""
    if glued in ROOTS:
        return ROOTS[glued]
    if len(glued) > _MAX_ROOT_CHARS:
        return None
    for affix in AFFIXES:
        if len(glued) <= len(affix):
            continue
        if glued.startswith(affix) and (found := _root(glued[len(affix):])):
            return found
        if glued.endswith(affix) and (found := _root(glued[: -len(affix)])):
            return found
    return None


def tool_families(tool: str) -> frozenset[str]:
    """The `DENIED_TOOLS` families `tool` belongs to under any spelling (empty: harmless)."""
    families: set[str] = set()
    folded = fold(tool)
    if folded in DENIED_TOOLS:
        families.add(folded)
    words = _words(tool)
    for start in range(len(words)):
        for end in range(start + 1, min(start + _MAX_GLUED, len(words)) + 1):
            found = _root("".join(words[start:end]))
            if found:
                families.add(found)
    return frozenset(families)


def denied_tools(tools: Iterable[str], allowed: Iterable[str] = ()) -> list[str]:
    """The tools of `tools` that are denied and not allowed, in order, without duplicates."""
    allowed_exact: set[str] = set()
    allowed_families: set[str] = set()
    for entry in allowed:
        folded = fold(entry)
        allowed_exact.add(folded)
        if folded in DENIED_TOOLS:
            allowed_families.add(folded)
    refused: list[str] = []
    for tool in tools:
        families = tool_families(tool)
        if not families or families <= allowed_families or fold(tool) in allowed_exact:
            continue
        if _qualified_family(tool) in allowed_families:
            continue  # `shell:bash` is a member of `shell`, which the operator allowed
        if tool not in refused:
            refused.append(tool)
    return refused
