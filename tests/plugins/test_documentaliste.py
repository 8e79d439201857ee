"""The documentaliste agent: headings, extractive summary, keywords, counts, hook wiring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from core.errors import AgentInputError
from plugins import documentaliste
from plugins.logic.documentaliste import process, split_sentences, summarize, tokenize
from tests.plugins import ROOT, run_in_sandbox, stand_in

RUNBOOK = """\
Cache Service Runbook
=====================

The cache service keeps rendered templates in memory so agents start fast. Every cache entry \
expires after a configurable time to live. The weather in the data centre was pleasant today.

## Eviction

When the cache is full, the least recently used entry is evicted first. Eviction never blocks \
readers: a reader sees the old entry or the new one.

```bash
# restart the cache, this is not a heading
systemctl restart cache
```

Monitoring
----------

Watch the cache hit rate on the dashboard. A falling hit rate means entries expire too early.

---

## Eviction
Second section with the same title, to check anchors.
"""

FRENCH = """\
# Compte rendu de la réunion

L'équipe a présenté le nouveau moteur de recherche. Le moteur indexe les documents en temps réel.
Les utilisateurs demandent des résultats plus pertinents. M. Martin propose d'améliorer le moteur \
avant la fin du trimestre.
"""


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based number of the line holding the `nth` occurrence of `needle`."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[nth - 1]


def test_markdown_headings_atx_and_setext_are_found_with_levels_and_lines() -> None:
    headings = summarize(RUNBOOK).headings
    assert [(h.level, h.text, h.line) for h in headings] == [
        (1, "Cache Service Runbook", 1),
        (2, "Eviction", line_of(RUNBOOK, "## Eviction")),
        (2, "Monitoring", line_of(RUNBOOK, "Monitoring")),
        (2, "Eviction", line_of(RUNBOOK, "## Eviction", nth=2)),
    ]


def test_code_comments_and_horizontal_rules_are_not_headings() -> None:
    texts = [h.text for h in summarize(RUNBOOK).headings]
    assert not any("restart" in t for t in texts)
    assert "" not in texts


def test_duplicate_headings_get_distinct_anchors() -> None:
    anchors = [h.anchor for h in summarize(RUNBOOK).headings]
    assert anchors == ["cache-service-runbook", "eviction", "monitoring", "eviction-1"]


def test_summary_keeps_on_topic_sentences_in_document_order() -> None:
    result = summarize(RUNBOOK, max_sentences=3)
    assert len(result.summary) == 3
    assert not any("weather" in s for s in result.summary)
    positions = [RUNBOOK.index(s[:30]) for s in result.summary]
    assert positions == sorted(positions)
    assert result.summary_text == " ".join(result.summary)


def test_summary_never_contains_headings_or_code() -> None:
    result = summarize(RUNBOOK, max_sentences=20)
    joined = " ".join(result.summary)
    assert "Runbook" not in joined
    assert "systemctl" not in joined


def test_keywords_skip_stop_words_and_point_at_their_lines() -> None:
    keywords = summarize(RUNBOOK, max_keywords=5).keywords
    assert keywords[0].term == "cache"
    assert not {k.term for k in keywords} & {"the", "a", "is", "when"}
    lines = RUNBOOK.splitlines()
    for line in keywords[0].lines:
        assert "cache" in lines[line - 1].lower()
    code_line = line_of(RUNBOOK, "restart the cache")
    assert (
        code_line not in keywords[0].lines
    )  # the code comment mentions the cache but is not prose


def test_plural_and_singular_count_as_one_keyword() -> None:
    text = "Agents run tasks. Each agent has a template. The agents share templates."
    terms = {k.term: k.count for k in summarize(text).keywords}
    assert terms["agent"] == 3
    assert "agents" not in terms


def test_french_text_is_detected_and_its_stop_words_and_elisions_dropped() -> None:
    result = summarize(FRENCH, max_keywords=3)
    assert result.language == "fr"
    assert result.keywords[0].term == "moteur"
    assert tokenize("L'équipe qu'il") == ["équipe", "il"]
    assert summarize(RUNBOOK).language == "en"


def test_abbreviations_and_initials_do_not_end_sentences() -> None:
    text = "Dr. Smith met M. Dupont, e.g. at lunch. J. R. Hartley wrote it! Did he? Yes."
    assert split_sentences(text) == [
        "Dr. Smith met M. Dupont, e.g. at lunch.",
        "J. R. Hartley wrote it!",
        "Did he?",
        "Yes.",
    ]


def test_counts_and_reading_time() -> None:
    text = " ".join(["word"] * 400) + "."
    result = summarize(text)
    assert result.word_count == 400
    assert result.sentence_count == 1
    assert result.reading_time_minutes == 2.0


def test_empty_text_gives_an_empty_report() -> None:
    result = process({"text": ""})
    assert result["word_count"] == 0
    assert result["summary"] == [] and result["keywords"] == [] and result["headings"] == []


def test_result_is_json_serializable() -> None:
    json.dumps(process({"text": RUNBOOK}))


@pytest.mark.parametrize(
    ("task", "field_name"),
    [
        ({}, "'text'"),
        ({"text": 42}, "'text'"),
        ({"text": "x", "max_sentences": 0}, "'max_sentences'"),
        ({"text": "x", "max_keywords": True}, "'max_keywords'"),
        ({"text": "x", "max_keywords": "5"}, "'max_keywords'"),
    ],
)
def test_bad_tasks_raise_value_error_naming_the_field(
    task: dict[str, Any], field_name: str
) -> None:
    with pytest.raises(ValueError, match=field_name):
        process(task)


def test_hook_ignores_other_implementations() -> None:
    agent = stand_in("hardware")
    assert documentaliste.plugin.agentfactory_process(agent=agent, task={"text": RUNBOOK}) is None
    assert documentaliste.plugin.agentfactory_implementations() == ["documentaliste"]


def test_hook_takes_defaults_from_agent_config_and_task_overrides_them() -> None:
    agent = stand_in("documentaliste", {"max_sentences": 1})
    result = documentaliste.plugin.agentfactory_process(agent=agent, task={"text": RUNBOOK})
    assert result is not None and len(result["summary"]) == 1
    task = {"text": RUNBOOK, "max_sentences": 2}
    result = documentaliste.plugin.agentfactory_process(agent=agent, task=task)
    assert result is not None and len(result["summary"]) == 2


def test_hook_turns_bad_input_into_agent_input_error() -> None:
    agent = stand_in("documentaliste")
    with pytest.raises(AgentInputError, match="documentaliste: 'text' must be a string"):
        documentaliste.plugin.agentfactory_process(agent=agent, task={"txt": "typo"})


@pytest.mark.sandbox
def test_the_published_package_gives_the_native_result_in_the_sandbox() -> None:
    task = {"text": RUNBOOK, "max_sentences": 2}
    native = json.loads(json.dumps(process(task)))
    assert run_in_sandbox("documentaliste", task) == native


REPORT = ROOT / "examples" / "report.md"


def keywords_from_the_cli(capsys: pytest.CaptureFixture[str], path: Path) -> list[dict[str, Any]]:
    try:
        main(["run", "documentaliste", "--input", str(path)])
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    keywords: list[dict[str, Any]] = json.loads(capsys.readouterr().out)["keywords"]
    return keywords


def test_keywords_are_listed_in_the_order_of_their_score(
    capsys: pytest.CaptureFixture[str],
) -> None:
    keywords = keywords_from_the_cli(capsys, REPORT)
    order = [(-k["score"], -k["count"], k["term"]) for k in keywords]
    assert order == sorted(order)
    assert keywords[0]["score"] == 1.0
    assert keywords[0]["term"] == "incident"  # most frequent heading word of the report


def test_number_words_and_everyday_adjectives_are_not_keywords(
    capsys: pytest.CaptureFixture[str],
) -> None:
    terms = {k["term"] for k in keywords_from_the_cli(capsys, REPORT)}
    assert not terms & {"two", "old", "new", "three", "second", "third", "fourteen"}
    assert {"incident", "billing", "availability"} <= terms
    french = "Les deux nouveaux serveurs et les trois anciens serveurs. Deux serveurs neufs."
    assert [k.term for k in summarize(french).keywords] == ["serveurs"]


def test_equal_scores_are_broken_by_count_then_alphabetically() -> None:
    text = "Zebra apple. Apple zebra. Mango kiwi."
    keywords = summarize(text).keywords
    assert [(k.term, k.score) for k in keywords] == [
        ("apple", 1.0), ("zebra", 1.0), ("kiwi", 0.5), ("mango", 0.5),
    ]  # fmt: skip
