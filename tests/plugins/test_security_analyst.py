"""The security_analyst agent: secrets and personal data found, checked, masked and located."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import AgentInputError
from plugins import security_analyst
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
