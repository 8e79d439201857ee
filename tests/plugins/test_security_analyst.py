"""The security_analyst agent: secrets and personal data found, checked, masked and located."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core.errors import AgentInputError
from plugins import security_analyst
from plugins.logic import security_analyst as logic
from plugins.logic.security_analyst import iban_valid, luhn_valid, process, scan
from tests.plugins import run_in_sandbox, stand_in

LEAKY = (Path(__file__).resolve().parents[2] / "examples" / "leaky_config.env").read_text()

# Every secret or personal value planted in examples/leaky_config.env.
PLANTED = [
    "Tr0ub4dor-and-3",
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "ghp_4V9xq2LmT8rZc1YwB6nK0pJd3sHf7gEaUi5o",
    "xoxb-2048119231-1938402214-q0Lr7VbXyZpT4wNc8uKd",
    "s3nd-m41l-n0w!",
    "billing@example.com",
    "support@example.org",
    "4111 1111 1111 1111",
    "3000 6000 0112 3456 7890 189",
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
]
# Test card numbers published by payment providers: all pass Luhn.
VALID_CARDS = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"]


def kinds(text: str, **options: Any) -> list[str]:
    return [f.kind for f in scan(text, **options).findings]


def line_of(needle: str) -> int:
    return next(n for n, line in enumerate(LEAKY.splitlines(), 1) if needle in line)


def test_masked_text_contains_no_planted_secret() -> None:
    masked = process({"text": LEAKY})["masked_text"]
    for secret in PLANTED:
        assert secret not in masked
    # ...and keeps everything that is not secret.
    assert "APP_ENV=production" in masked
    assert "db.internal.example.com:5432/billing" in masked
    assert "API_KEY=${VAULT_API_KEY}" in masked


def test_each_leak_is_reported_with_its_kind_line_and_column() -> None:
    findings = scan(LEAKY).findings
    located = {(f.kind, f.line) for f in findings}
    assert located == {
        ("url_password", line_of("DATABASE_URL")),
        ("aws_access_key_id", line_of("AWS_ACCESS_KEY_ID")),
        ("aws_secret_access_key", line_of("AWS_SECRET_ACCESS_KEY")),
        ("github_token", line_of("GITHUB_TOKEN")),
        ("slack_token", line_of("SLACK_BOT_TOKEN")),
        ("generic_secret", line_of("SMTP_PASSWORD")),
        ("email", line_of("SMTP_USER")),
        ("email", line_of("SUPPORT_EMAIL")),
        ("credit_card", line_of("TEST_CARD")),
        ("iban", line_of("REFUND_IBAN")),
        ("private_key", line_of("BEGIN RSA PRIVATE KEY")),
    }
    github = next(f for f in findings if f.kind == "github_token")
    assert github.column == len("GITHUB_TOKEN=") + 1
    assert github.masked_value.startswith("ghp_") and "4V9x" not in github.masked_value
    assert process({"text": LEAKY})["risk"] == "critical"


def test_luhn_invalid_numbers_and_numbers_without_issuer_are_not_cards() -> None:
    for card in VALID_CARDS:
        assert luhn_valid(card)
        assert kinds(f"card: {card}") == ["credit_card"]
    assert not luhn_valid("4111111111111112")
    quiet = (
        "order 4111111111111112, trace 1234567890123456789, ts 1700000000123, v1.4111111111111111"
    )
    assert kinds(quiet) == []


def test_grouped_card_numbers_are_found_and_only_last_four_digits_shown() -> None:
    result = scan("Paid with 5555-5555-5555-4444 (exp 12/27) and 3782 822463 10005.")
    assert [f.masked_value for f in result.findings] == [
        "**** **** **** 4444",
        "**** **** **** 0005",
    ]
    assert "5555-5555" not in result.masked_text and "(exp 12/27)" in result.masked_text


def test_iban_needs_the_right_length_and_checksum() -> None:
    assert iban_valid("FR76 3000 6000 0112 3456 7890 189")
    assert iban_valid("DE89370400440532013000")
    assert not iban_valid("DE89370400440532013001")  # one digit off: mod-97 fails
    assert not iban_valid("FR76 3000 6000 0112 3456 7890 18")  # too short for France
    assert kinds("IBAN DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX") == ["iban"]
    assert kinds("IBAN DE89 3704 0044 0532 0130 01") == []


def test_placeholders_and_code_are_not_generic_secrets() -> None:
    text = "\n".join(
        [
            "password = ${DB_PASSWORD}",
            "api_key: <your-api-key>",
            "token = os.environ['TOKEN']",
            "secret = settings.SECRET_KEY",
            "PASSWORD=changeme",
            "tokenizer = bert-base-uncased",
            "password_policy = strict-and-long",
        ]
    )
    assert kinds(text) == []
    assert kinds('db_password = "hunter2-Tr0ub"') == ["generic_secret"]
    assert kinds('{"client_secret": "9f8e7d6c5b4a"}') == ["generic_secret"]


def test_specific_detector_wins_over_generic_assignment() -> None:
    token = "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8"
    assert kinds(f"GITHUB_TOKEN={token}") == ["github_token"]
    assert kinds("aws_secret_access_key = " + "A" * 20 + "b" * 20) == ["aws_secret_access_key"]


def test_private_keys_are_masked_whole_even_when_truncated() -> None:
    body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"
    full = f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\nnext: line"
    result = scan(full)
    assert [f.kind for f in result.findings] == ["private_key"]
    assert body not in result.masked_text and result.masked_text.endswith("\nnext: line")
    truncated = scan(f"key:\n-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n{body}\n\nThe end.")
    assert body not in truncated.masked_text and "The end." in truncated.masked_text


def test_emails_keep_their_domain_and_phones_are_opt_in() -> None:
    text = "Contact jane.doe@example.fr or +33 6 12 34 56 78, or 01 23 45 67 89."
    assert kinds(text) == ["email"]
    result = scan(text, phones=True)
    assert [f.kind for f in result.findings] == ["email", "phone", "phone"]
    assert result.findings[0].masked_value == "j***@example.fr"
    assert "12 34 56" not in result.masked_text


def test_clean_text_has_no_findings_and_no_risk() -> None:
    text = "Release 2.4.1 fixes 3 bugs; build 20240315 took 412 s on 16 cores.\n"
    result = process({"text": text})
    assert result["findings"] == [] and result["risk"] == "none"
    assert result["masked_text"] == text


@pytest.mark.parametrize(
    ("task", "fragment"),
    [({}, "'text'"), ({"text": ["a"]}, "'text'"), ({"text": "a", "phones": "yes"}, "'phones'")],
)
def test_bad_tasks_raise_value_error(task: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        process(task)


def test_hook_reads_phones_from_config_and_reports_bad_input() -> None:
    text = {"text": "call +44 20 7946 0958"}
    assert (
        security_analyst.plugin.agentfactory_process(agent=stand_in("hardware"), task=text) is None
    )
    plain = security_analyst.plugin.agentfactory_process(
        agent=stand_in("security_analyst"), task=text
    )
    assert plain is not None and plain["findings"] == []
    agent = stand_in("security_analyst", {"phones": True})
    result = security_analyst.plugin.agentfactory_process(agent=agent, task=text)
    assert result is not None and result["counts"] == {"phone": 1}
    json.dumps(result)
    with pytest.raises(AgentInputError, match="security_analyst: 'text'"):
        security_analyst.plugin.agentfactory_process(agent=agent, task={})


def test_severity_threshold_skips_lesser_findings_and_leaves_them_unmasked() -> None:
    text = "owner: ops@example.com\nGITHUB_TOKEN=ghp_" + "Zx9" * 12 + "\n"
    result = process({"text": text, "severity_threshold": "high"})
    assert [f["kind"] for f in result["findings"]] == ["github_token"]
    assert "ops@example.com" in result["masked_text"]
    assert "Zx9Zx9" not in result["masked_text"]
    with pytest.raises(ValueError, match="'severity_threshold' must be one of low, medium"):
        process({"text": text, "severity_threshold": "severe"})


def test_max_findings_caps_the_report_but_everything_is_still_masked() -> None:
    text = "\n".join(f"user{n}@example.com" for n in range(5))
    result = process({"text": text, "max_findings": 2})
    assert len(result["findings"]) == 2 and result["truncated"] is True
    assert result["counts"] == {"email": 5}
    assert "user4@" not in result["masked_text"]


@pytest.mark.sandbox
def test_the_published_package_gives_the_native_result_in_the_sandbox() -> None:
    task = {"text": LEAKY, "phones": True}
    native = json.loads(json.dumps(process(task)))
    assert run_in_sandbox("security_analyst", task) == native


# ---------------------------------------------------------------------------------------------
# The windows (prefilters) must not change what is found: each detector's matches with them
# equal its pattern's `finditer` matches, over planted secrets, near misses, Unicode that `re`
# treats specially, long runs and seeded random mixes of all of these.

SAMPLES = [
    LEAKY,
    "card: 5555555555554444 and 378282246310005, 6011111111111117",
    "order 4111111111111112, trace 1234567890123456789, ts 1700000000123, v1.4111111111111111",
    "Paid with 5555-5555-5555-4444 (exp 12/27) and 3782 822463 10005.",
    "IBAN DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX / IBAN DE89 3704 0044 0532 0130 01",
    "password = ${DB_PASSWORD}\napi_key: <your-api-key>\ntoken = os.environ['TOKEN']\n"
    "secret = settings.SECRET_KEY\nPASSWORD=changeme\ntokenizer = bert-base-uncased\n"
    'password_policy = strict-and-long\ndb_password = "hunter2-Tr0ub"\n'
    '{"client_secret": "9f8e7d6c5b4a"}',
    "GITHUB_TOKEN=ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8\n"
    "aws_secret_access_key = " + "A" * 20 + "b" * 20,
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n"
    "-----END PRIVATE KEY-----\nnext: line\n-----BEGIN OPENSSH PRIVATE KEY-----\nMIIEvQIBA\n\n",
    "Contact jane.doe@example.fr or +33 6 12 34 56 78, or 01 23 45 67 89.",
    "Release 2.4.1 fixes 3 bugs; build 20240315 took 412 s on 16 cores.\n",
    # One of every kind.
    "id ASIAY34FZKBOKMUTVV7A secret aws_secret_key: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'",
    "github_pat_" + "x1Y2" * 20 + "z3 gho_" + "Q" * 36 + " ghs_" + "r9" * 18,
    "xoxp-1234567890-abcdef hook https://hooks.slack.com/services/T0ABC/B0DEF/aBcDeF123",
    "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc" + " rk_live_" + "Zz9" * 8 + " AIza" + "S" * 35,
    "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "redis://:s3cr3t-pass@cache:6379 and git+ssh://deploy:hunter2@example.com/repo.git",
    "X.API-KEY => Zq8!rT4$wP and credentials2: 'Mn7#bV2@xC' my.access_key_id=Hg5^tR8*",
    "private-key-value:=Lk0(pO9) TOKEN_ID = qwerty123456 pwd:abc123def",
    "NL91ABNA0417164300 GB82 WEST 1234 5698 7654 32 and mail x.y+z@mail.example.co.uk",
    # Near misses.
    "AKIAIOSFODNN7EXAMPL xAKIAIOSFODNN7EXAMPLE AKIAIOSFODNN7EXAMPLEX ghp_" + "a" * 35,
    "xox- xoxz-abcdefghijk sk_test_abcdefghijklmnopqrstu AIza" + "b" * 34 + " eyJabc.eyJ.x",
    "http://user@host x://:p@ ://a:b@c 1http://u:p@h -ftp://a:b@h mailto:a@b",
    "pass word = abcdefg secre t=abcdefgh to-ken: abcdefgh api key = abcdefgh",
    "FR76 3000 6000 0112 3456 7890 18 XX12 3456 7890 1234 5678 ZZ00",
    "4111-1111 1111 1111 4111 1111 1111 1111.5 4111 1111 1111 1111,2 -4111111111111111",
    "a@b @example.com x@y.c user@localhost first.last@sub-domain.example",
    # What `re` matches case-insensitively beyond ASCII, and non-ASCII digits and letters.
    "\u017fecret=abcdefgh pa\u017f\u017fword: hunter22 \u0131nternal_token=zz9988 \u212aEY",
    "AW\u017f_SECRET_KEY=" + "w" * 40
    + " \u0130NTERNAL_API_KEY=Qw3rty!@ \u0130\u0130 token=\u0130x",
    "\u0664\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661"
    "\u0661\u0661 \uff14\uff11\uff11\uff11 DE\u0668\u0669370400440532013000",
    "jos\u00e9@example.com caf\u00e9_password=\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9x "
    "\u2019token\u2019: \u201cabcdefgh\u201d ma\u00efl://us\u00e9r:p\u00e4ss@h\u00f6st",
    # Long runs, searched rather than tried position by position.
    "a" * 400 + "token=abcdefgh1 " + "-." * 300 + "secret:qwertyuiop",
    "x" * 300 + "@example.com " + "http" + "+" * 300 + "://u:pw@h " + "1" * 600,
    "AB" * 200 + "12 " + "token" * 100 + "=abcdefgh " + "pwd" * 120,
]
PIECES = [
    "token", "TOKEN", "Secret", "api", "key", "pass", "passwd", "word", "pwd", "access",
    "private", "credential", "s", "aws", "_", "-", ".", "=", ":", " ", "\n", '"', "'", "#", ",",
    "@", "example.com", "://", "http", "AKIA", "ghp_", "xoxb-", "sk_live_", "AIza", "eyJ", "4111",
    "1111", "5555", "4444", "0", "9", "FR76", "DE89", "3704", "GB", "IOSFODNN7EXAMPLE",
    "aB3dE6gH9jK2mN5pQ8", "\u0663", "\u0130", "\u0131", "\u017f", "\u212a", "\u00e9", "-----BEGIN ",
    "PRIVATE KEY-----", "-----END ", "=>", ":=", "(", "x" * 40,
]


def corpus() -> list[str]:
    rng = random.Random(13)
    mixes = ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 60))) for _ in range(400)]
    prose = "The team reviewed the logs; nothing unusual was found apart from disk space.\n"
    planted = [prose * rng.randint(0, 40) + sample + prose * rng.randint(0, 40)
               for sample in SAMPLES]
    return SAMPLES + mixes + planted + ["".join(rng.sample(SAMPLES, 5))]


def found(text: str, detector: Any, windowed: bool) -> list[tuple[tuple[int, int], dict[str, Any]]]:
    subject = logic._Subject(text)
    matches = logic._matches(subject, detector) if windowed else detector.pattern.finditer(text)
    return [(m.span(), m.groupdict()) for m in matches]


def test_windows_find_exactly_what_the_patterns_find() -> None:
    windowed = [d for d in logic.DETECTORS if d.windows is not None]
    assert len(windowed) == 12  # all but the private keys' (a literal start: already fast)
    for text in corpus():
        for detector in windowed:
            assert found(text, detector, True) == found(text, detector, False), (
                detector.kind, text)


def test_scan_with_windows_equals_scan_without(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = corpus()
    fast = [scan(text, phones=True).to_dict() for text in texts]
    plain = tuple(replace(d, windows=None) for d in logic.DETECTORS)
    monkeypatch.setattr(logic, "DETECTORS", plain)
    assert [scan(text, phones=True).to_dict() for text in texts] == fast
    assert sum(len(result["findings"]) for result in fast) > 200


def test_folding_keeps_every_case_insensitive_match_of_a_letter() -> None:
    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    for letter in "abcdefghijklmnopqrstuvwxyz":
        for char in set(re.findall(letter, everything, re.IGNORECASE)):
            assert logic._Subject(char).folded in (letter, None), (letter, char)


def test_windowed_patterns_never_match_nothing() -> None:
    for detector in logic.DETECTORS:
        assert detector.pattern.search("") is None
