"""Issue 11, points 5, 6, 7 and 10 through the registry: exact names, bounded manifests,
refusals at publish (file-and-directory archives, `extends` cycles, denied tools under any
spelling, local versions) and downloads counted once per client per day.

Every refusal is asserted precisely (error type, the field or entry it names) with the store
unchanged: same rows, same blobs.
"""

from __future__ import annotations

import hashlib
import json
import random
import stat
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, func, select

from registry import Registry, RegistryConfig
from registry.archive import pack_files
from registry.errors import (
    InvalidName,
    InvalidVersion,
    ManifestError,
    RegistryError,
    UnsafeEntry,
)
from registry.models import DownloadClient, Namespace, Publisher, Release
from registry.models import Package as PackageRow
from tests.registry.factories import (
    REGULAR,
    TestPublisher,
    make_publisher,
    package_files,
    publish,
    raw_zip,
    sign,
)

# Every way a name can carry more than it shows.
HOSTILE_SUFFIXES = [
    "\n", "\r\n", "\t", " ", "\x00", "\x1b[31m", "\u200b", "\u200d", "\ufeff", "\u202e",
    "\u00a0", "\u2028", "\u3000",
]


def store(registry: Registry) -> tuple[int, ...]:
    """What a refusal must leave as it was: the row counts and the blobs."""
    with Session(registry.engine) as s:
        counts = tuple(
            s.exec(select(func.count()).select_from(table)).one()
            for table in (Publisher, Namespace, PackageRow, Release, DownloadClient)
        )
    return (*counts, len(list(registry.blobs.digests())))


def upload(registry: Registry, pub: TestPublisher, files: dict[str, bytes]) -> Any:
    """Publish raw `files` (not validated by the builder), signed as their manifest claims."""
    archive = pack_files(files)
    try:
        doc = json.loads(files["agent.json"])
        signature = sign(pub, archive, doc["name"], doc["version"])
    except (ValueError, KeyError, TypeError, RegistryError):
        signature = bytes(64)  # nothing to sign for: the upload is refused before verify
    return registry.publish(pub.principal, archive, signature, pub.key.key_id)


def refused(registry: Registry, pub: TestPublisher, files: dict[str, bytes],
            kind: type[RegistryError]) -> RegistryError:
    before = store(registry)
    with pytest.raises(kind) as err:
        upload(registry, pub, files)
    assert store(registry) == before
    return err.value


def noise(size: int) -> str:
    """Text that does not compress (so the archive's ratio cap does not meet it first)."""
    return random.Random(size).randbytes(size // 2 + 1).hex()[:size]


def manifest_with(**changes: Any) -> dict[str, bytes]:
    return package_files(manifest=changes)


# -- 5. names are exact --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", HOSTILE_SUFFIXES)
def test_publisher_and_namespace_names_are_matched_in_full(
    registry: Registry, suffix: str
) -> None:
    before = store(registry)
    with pytest.raises(InvalidName) as err:
        registry.register_publisher(f"acme{suffix}", "acme")
    assert err.value.what == "publisher name" and err.value.name == f"acme{suffix}"
    with pytest.raises(InvalidName) as err:
        registry.register_publisher("acme", f"acme{suffix}")
    assert err.value.what == "namespace"
    with pytest.raises(InvalidName):
        registry.register_publisher(f"{suffix}acme", None)
    assert store(registry) == before


@pytest.mark.parametrize("suffix", HOSTILE_SUFFIXES)
def test_package_names_are_matched_in_full(
    registry: Registry, acme: TestPublisher, suffix: str
) -> None:
    for name in (f"acme/summarizer{suffix}", f"acme{suffix}/summarizer",
                 f"acme/sum{suffix}marizer"):
        err = refused(registry, acme, manifest_with(name=name), ManifestError)
        assert [path for path, _ in err.errors] == ["name"]  # type: ignore[attr-defined]
        assert "must be 1-64 letters" in str(err)


def test_a_second_namespace_is_matched_in_full(registry: Registry, acme: TestPublisher) -> None:
    for suffix in HOSTILE_SUFFIXES:
        with pytest.raises(InvalidName) as err:
            registry.add_namespace(acme.principal, f"acme-tools{suffix}")
        assert err.value.what == "namespace"
    assert registry.publisher("acme").namespaces == ["acme"]


@pytest.mark.parametrize("version", ["1.0.0\n", " 1.0.0", "1.0.0 ", "1.0.0\t", "\n1.0.0",
                                     "1.0.0\r\n", "1.0.0\u2028", "1.0.0\u3000"])
def test_versions_are_taken_as_written(
    registry: Registry, acme: TestPublisher, version: str
) -> None:
    """`packaging` strips whitespace; the registry refuses it instead of storing a display
    version that would break a header (Content-Disposition) or a file name."""
    err = refused(registry, acme, manifest_with(version=version), InvalidVersion)
    assert err.version == version  # type: ignore[attr-defined]


# -- 10. refused at publish: local versions, x and x/..., extends cycles, denied tools -----------


@pytest.mark.parametrize("version", ["1.0.0+local", "2.0+ubuntu.1", "1.0.0rc1+abc.5",
                                     "1!2.0+x"])
def test_local_version_labels_are_refused(
    registry: Registry, acme: TestPublisher, version: str
) -> None:
    err = refused(registry, acme, manifest_with(version=version), ManifestError)
    [(field, message)] = err.errors  # type: ignore[attr-defined]
    assert field == "version" and "local version label" in message


@pytest.mark.parametrize(
    ("extra", "entry"),
    [
        ([("process.py/evil.py", b"x")], "process.py"),  # a file, and a directory under it
        ([("data", b"file"), ("data/notes.txt", b"dir")], "data"),
        ([("data/", b""), ("data", b"file")], "data"),  # an explicit directory entry
        ([("Docs", b"file"), ("docs/a/b.txt", b"deep")], "Docs"),  # case-folded
        ([("a/b", b"file"), ("a/b/c/d.txt", b"deeper")], "a/b"),
    ],
)
def test_a_name_that_is_both_file_and_directory_is_refused(
    registry: Registry, acme: TestPublisher, extra: list[tuple[str, bytes]], entry: str
) -> None:
    entries = [(k, v, REGULAR) for k, v in package_files().items()]
    entries += [(name, body, (stat.S_IFDIR | 0o755) if name.endswith("/") else REGULAR)
                for name, body in extra]
    archive = raw_zip(entries)
    before = store(registry)
    with pytest.raises(UnsafeEntry) as err:
        registry.publish(acme.principal, archive,
                         sign(acme, archive, "acme/summarizer", "1.0.0"), acme.key.key_id)
    assert err.value.entry == entry and "both a file and a directory" in str(err.value)
    assert store(registry) == before


def templates(*docs: tuple[str, str | None]) -> dict[str, bytes]:
    """A package whose templates are `(name, extends)` pairs, all in namespace acme."""
    files = package_files()
    for path in [p for p in files if p.startswith("templates/")]:
        del files[path]
    paths = []
    for name, parent in docs:
        path = f"templates/{name.split('/')[1]}.json"
        paths.append(path)
        doc: dict[str, Any] = {"name": name, "version": "1.0.0", "capabilities": ["x"]}
        if parent is not None:
            doc["extends"] = parent
        files[path] = json.dumps(doc).encode()
    manifest = json.loads(files["agent.json"])
    manifest["templates"] = paths
    files["agent.json"] = json.dumps(manifest).encode()
    return files


@pytest.mark.parametrize(
    ("docs", "message"),
    [
        ([("acme/a", "acme/a")], "template 'acme/a' extends itself"),
        ([("acme/a", "acme/b"), ("acme/b", "acme/a")], "cycle: acme/a -> acme/b -> acme/a"),
        ([("acme/a", "acme/b"), ("acme/b", "acme/c"), ("acme/c", "acme/b")],
         "cycle: acme/b -> acme/c -> acme/b"),
        ([("acme/x", "base_agent"), ("acme/a", "acme/b"), ("acme/b", "acme/c"),
          ("acme/c", "acme/a")], "cycle: acme/a -> acme/b -> acme/c -> acme/a"),
    ],
)
def test_extends_cycles_within_a_package_are_refused(
    registry: Registry, acme: TestPublisher, docs: list[tuple[str, str | None]], message: str
) -> None:
    err = refused(registry, acme, templates(*docs), ManifestError)
    [(field, said)] = err.errors  # type: ignore[attr-defined]
    assert field == "extends" and message in said


def test_an_extends_chain_without_a_cycle_is_published(
    registry: Registry, acme: TestPublisher
) -> None:
    files = templates(("acme/summarizer", "acme/base"), ("acme/base", "base_agent"))
    assert upload(registry, acme, files).name == "acme/summarizer"


def test_two_templates_with_one_name_are_refused(registry: Registry, acme: TestPublisher) -> None:
    files = templates(("acme/a", None), ("acme/b", None))
    files["templates/b.json"] = files["templates/a.json"]
    err = refused(registry, acme, files, ManifestError)
    assert "'acme/a' is also the name of templates/a.json" in str(err)


DENIED_SPELLINGS = [
    "Shell", "SHELL", "run-shell", "run_shell", "shell_exec", "runShell", "os.system",
    "os_system", "subprocess", "SubProcess", "popen", "bash", "bash:exec", "network_request",
    "http_get", "HttpGet", "curl", "web-request", "websocket", "fs_write", "file_write",
    "write-file", "rm_file", "python_exec", "Terminal", "unsafe_shell_tool", "ssh",
]


@pytest.mark.parametrize("tool", DENIED_SPELLINGS)
def test_spelling_variants_of_denied_tools_are_refused(
    registry: Registry, acme: TestPublisher, tool: str
) -> None:
    err = refused(registry, acme, package_files(tools=["text_reader", tool]), ManifestError)
    assert err.errors == [  # type: ignore[attr-defined]
        ("tools", f"tool {tool!r} is on the deny-list of this registry")
    ]


@pytest.mark.parametrize("tool", ["ｓｈｅｌｌ", "sh\u200bell", "shel\u0308l", "\u0455hell",
                                  "shell\n", "run shell"])
def test_tool_names_outside_plain_ascii_are_refused(
    registry: Registry, acme: TestPublisher, tool: str
) -> None:
    """Fullwidth, zero-width, combining, Cyrillic or spaced spellings never reach the
    deny-list's spelling match: the tool name itself is refused."""
    err = refused(registry, acme, package_files(tools=[tool]), ManifestError)
    [(field, message)] = err.errors  # type: ignore[attr-defined]
    assert field == "tools.0" and ("must be ASCII letters" in message or "deny-list" in message)


def test_harmless_tools_that_merely_contain_a_denied_word_are_published(
    registry: Registry, acme: TestPublisher
) -> None:
    tools = ["shellfish_db", "hash_text", "regex_search", "luhn_check", "python_ast",
             "refresh_cache", "execution_log"]
    assert upload(registry, acme, package_files(tools=tools)).name == "acme/summarizer"


def test_operators_can_still_allow_a_denied_family(db_url: str, tmp_path: Any) -> None:
    from registry import LocalBlobStore
    from registry.db import make_engine

    registry = Registry(make_engine(db_url), LocalBlobStore(tmp_path / "allowed"),
                        RegistryConfig(allowed_tools=frozenset({"shell", "http_get"})))
    try:
        acme = make_publisher(registry, "acme")
        released = publish(registry, acme, tools=["run-shell", "shell:bash", "http_get"])
        assert released.name == "acme/summarizer"
        with pytest.raises(ManifestError) as err:
            publish(registry, acme, version="2.0.0", tools=["http_post"])
        assert "'http_post' is on the deny-list" in str(err.value)
    finally:
        registry.close()


# -- 7. every manifest field is bounded ----------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"authors": ["A"] * 21}, "authors"),
        ({"authors": ["x" * 201]}, "authors.0"),
        ({"authors": ["Ada\nLovelace"]}, "authors.0"),
        ({"authors": [""]}, "authors.0"),
        ({"permissions": [f"p{i}" for i in range(21)]}, "permissions"),
        ({"permissions": ["p" * 65]}, "permissions.0"),
        ({"homepage": "https://example.org/" + "a" * 2000}, "homepage"),
        ({"homepage": "javascript:alert(1)"}, "homepage"),
        ({"homepage": "https://example.org/\nSet-Cookie: x"}, "homepage"),
        ({"keywords": ["k"] * 31}, "keywords"),
        ({"keywords": ["k" * 51]}, "keywords.0"),
        ({"summary": "s" * 301}, "summary"),
        ({"description": "d" * 20_001}, "description"),
        ({"license": "L" * 101}, "license"),
        ({"requires": {f"acme/dep{i}": ">=1" for i in range(51)}}, "requires"),
        ({"requires": {"acme/dep": ">=1," + ",".join(["!=2"] * 80)}}, "requires.acme/dep"),
        ({"examples": [{"name": f"e{i}", "input": {}} for i in range(21)]}, "examples"),
        ({"examples": [{"name": "e" * 101, "input": {}}]}, "examples.0.name"),
        ({"examples": [{"name": "big", "input": {"text": "x" * 20_000}}]}, "examples.0"),
        ({"examples": [{"name": "c", "input": {},
                        "checks": [{"op": "exists", "path": "a"}] * 51}]}, "examples.0.checks"),
        ({"entry": "a" * 200 + ".py:process"}, "entry"),
    ],
)
def test_every_manifest_field_is_bounded(
    registry: Registry, acme: TestPublisher, changes: dict[str, Any], field: str
) -> None:
    err = refused(registry, acme, manifest_with(**changes), ManifestError)
    assert field in [path for path, _ in err.errors]  # type: ignore[attr-defined]
    assert f"agent.json: {field}: " in str(err)


def test_the_manifest_as_a_whole_is_bounded(registry: Registry, acme: TestPublisher) -> None:
    files = manifest_with(notes=noise(128 * 1024))
    err = refused(registry, acme, files, ManifestError)
    assert "over the 131072-byte limit" in str(err)


def test_a_manifest_with_thousands_of_bad_entries_gets_a_short_message(
    registry: Registry, acme: TestPublisher
) -> None:
    err = refused(registry, acme, manifest_with(authors=[1] * 5000), ManifestError)
    assert len(err.errors) == 21 and "and 4980 more errors" in str(err)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"capabilities": [f"c{i}" for i in range(51)]}, "capabilities"),
        ({"capabilities": ["c" * 65]}, "capabilities.0"),
        ({"tools": [f"t{i}" for i in range(51)]}, "tools"),
        ({"tools": ["t" * 65]}, "tools.0"),
    ],
)
def test_template_lists_are_bounded(
    registry: Registry, acme: TestPublisher, kwargs: dict[str, Any], where: str
) -> None:
    err = refused(registry, acme, package_files(**kwargs), ManifestError)
    assert err.source == "templates/summarizer.json"  # type: ignore[attr-defined]
    assert where in [path for path, _ in err.errors]  # type: ignore[attr-defined]


def test_readme_and_template_files_are_bounded(registry: Registry, acme: TestPublisher) -> None:
    files = package_files()
    files["README.md"] = b"# big\n" + noise(512 * 1024).encode()
    err = refused(registry, acme, files, ManifestError)
    assert err.source == "README.md" and "over the 524288-byte limit" in str(err)  # type: ignore[attr-defined]
    files = package_files()
    doc = json.loads(files["templates/summarizer.json"])
    doc["description"] = noise(64 * 1024)
    files["templates/summarizer.json"] = json.dumps(doc).encode()
    err = refused(registry, acme, files, ManifestError)
    assert err.source == "templates/summarizer.json" and "65536-byte limit" in str(err)  # type: ignore[attr-defined]


def test_limits_come_from_the_registry_config(db_url: str, tmp_path: Any) -> None:
    from registry import LocalBlobStore
    from registry.config import ArchiveLimits, ManifestLimits
    from registry.db import make_engine

    config = RegistryConfig(limits=ArchiveLimits(manifest=ManifestLimits(keywords=1)))
    registry = Registry(make_engine(db_url), LocalBlobStore(tmp_path / "strict"), config)
    try:
        acme = make_publisher(registry, "acme")
        with pytest.raises(ManifestError) as err:
            publish(registry, acme, keywords=["one", "two"])
        assert "keywords: at most 1 entries, got 2" in str(err.value)
    finally:
        registry.close()


# -- 6. downloads count once per client per day --------------------------------------------------


def test_downloads_count_once_per_client_per_day(registry: Registry, acme: TestPublisher) -> None:
    publish(registry, acme)
    publish(registry, acme, version="1.1.0")
    for _ in range(20):
        registry.download("acme/summarizer", "1.0.0", client="address:203.0.113.9")
    assert registry.package("acme/summarizer").downloads == 1
    registry.download("acme/summarizer", "1.0.0", client="address:198.51.100.1")
    registry.download("acme/summarizer", "1.0.0", client=f"publisher:{acme.principal.publisher_id}")
    registry.download("acme/summarizer", "1.1.0", client="address:203.0.113.9")  # other release
    assert registry.package("acme/summarizer").downloads == 4
    with Session(registry.engine) as s:
        clients = s.exec(select(DownloadClient.client)).all()
    assert "203.0.113.9" not in " ".join(clients) and all(len(c) == 64 for c in clients)


def test_a_client_counts_again_the_next_day(registry: Registry, acme: TestPublisher) -> None:
    release = publish(registry, acme)
    client = "address:203.0.113.9"
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    with Session(registry.engine) as s:
        release_id = s.exec(select(Release.id).where(Release.digest == release.digest)).one()
        assert release_id is not None
        s.add(DownloadClient(release_id=release_id, day=yesterday,
                             client=hashlib.sha256(client.encode()).hexdigest()))
        s.commit()
    registry.download("acme/summarizer", "1.0.0", client=client)
    registry.download("acme/summarizer", "1.0.0", client=client)
    assert registry.package("acme/summarizer").downloads == 1
    with Session(registry.engine) as s:  # yesterday's row was pruned
        assert [r.day for r in s.exec(select(DownloadClient)).all()] == [
            datetime.now(UTC).date()
        ]
