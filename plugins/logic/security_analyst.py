"""Find secrets and personal data in a text and return it masked, with one finding per hit.

This file is the whole agent: it imports only the standard library and is published unchanged as
the `process.py` of the `security_analyst` package, so it must stay self-contained.

Invariants:
- `masked_text` contains none of the characters a finding masked: each finding's span is replaced
  wholesale, and a finding's `masked_value` shows at most a non-secret prefix (a token's type
  marker like `ghp_`, a card's last four digits, an e-mail's domain).
- Findings never overlap. When two detectors match the same characters, the more specific one wins
  (an AWS key inside `api_key=...` is reported as an AWS key), then the earlier, longer match.
- Numbers are checked, not just matched: a card number must pass Luhn and carry a known issuer
  prefix, an IBAN must have its country's length and pass mod-97, so random digit runs are quiet.
- Lines and columns are 1-based and point at the first character of the secret.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SEVERITIES = ("low", "medium", "high", "critical")

# Lengths of IBANs per country (ISO 13616 registry, SEPA area and common others).
IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AT": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "CH": 21,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "EE": 20,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IS": 26,
    "IT": 27,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MT": 31,
    "NL": 18,
    "NO": 15,
    "PL": 28,
    "PT": 25,
    "RO": 24,
    "SA": 24,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "TN": 24,
    "TR": 26,
}
_PLACEHOLDER_RE = re.compile(
    r"^(?:\$\{?\w+\}?|\{\{.*\}\}|<[^>]*>|%\(?\w*\)?s|x+|\*+|\.+|changeme|change_me|example|"
    r"placeholder|secret|password|token|none|null|true|false|your[_-].*|todo|redacted|dummy)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: str
    line: int
    column: int
    masked_value: str
    start: int  # offsets into the original text, end exclusive
    end: int


@dataclass(frozen=True)
class ScanResult:
    masked_text: str
    findings: list[Finding]

    @property
    def risk(self) -> str:
        """The highest severity found, or "none"."""
        ranks = [SEVERITIES.index(f.severity) for f in self.findings]
        return SEVERITIES[max(ranks)] if ranks else "none"

    def to_dict(self, max_findings: int | None = None) -> dict[str, Any]:
        shown = self.findings if max_findings is None else self.findings[:max_findings]
        return {
            "masked_text": self.masked_text,
            "findings": [vars(f).copy() for f in shown],  # flat records: no deep copy
            "truncated": len(shown) < len(self.findings),
            "counts": dict(Counter(f.kind for f in self.findings)),
            "risk": self.risk,
        }


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum (the last digit is the check digit)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_issuer(digits: str) -> str | None:
    """The card network a number belongs to by prefix and length, or None for no known network."""
    n = len(digits)
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if n == 16 and (51 <= int(digits[:2]) <= 55 or 2221 <= int(digits[:4]) <= 2720):
        return "mastercard"
    if n == 15 and digits[:2] in ("34", "37"):
        return "amex"
    if n in (16, 19) and (digits.startswith(("6011", "65")) or 644 <= int(digits[:3]) <= 649):
        return "discover"
    if 16 <= n <= 19 and 3528 <= int(digits[:4]) <= 3589:
        return "jcb"
    if n == 14 and digits[:2] in ("36", "38", "30"):
        return "diners"
    return None


def iban_valid(candidate: str) -> bool:
    """True when `candidate` (spaces allowed) has its country's length and passes mod-97."""
    iban = candidate.replace(" ", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _mask(value: str, keep_start: int = 0, keep_end: int = 0) -> str:
    """Keep the non-secret ends, star the rest; always at least four stars."""
    if keep_start + keep_end + 4 > len(value):
        keep_start = keep_end = 0
    hidden = max(4, len(value) - keep_start - keep_end)
    return value[:keep_start] + "*" * hidden + (value[len(value) - keep_end :] if keep_end else "")


@dataclass(frozen=True)
class Detector:
    """A pattern; the secret is group "s" when the pattern has one, else the whole match."""

    kind: str
    severity: str
    pattern: re.Pattern[str]
    mask: Callable[[str], str]
    accept: Callable[[str], bool] = lambda value: True


def _mask_email(value: str) -> str:
    user, _, domain = value.partition("@")
    return user[:1] + "***@" + domain


def _mask_card(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    return "**** " * ((len(digits) - 1) // 4) + digits[-4:]


def _accept_card(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    return luhn_valid(digits) and card_issuer(digits) is not None


def _accept_generic(value: str) -> bool:
    """Refuse placeholders and code: `os.environ[...]`, `get_token()`, `settings.TOKEN`."""
    if _PLACEHOLDER_RE.match(value) or len(set(value)) <= 3 or any(c in value for c in "()[]{}"):
        return False
    return not re.fullmatch(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", value)


# A name that holds a secret ends with the marker, maybe with a short suffix ("DB_PASSWORD",
# "secret_key", "token2"); "tokenizer" or "password_policy" do not hold one.
_SECRET_NAME = (
    r"[\w.-]*?(?:api[_-]?key|secret|token|passw(?:or)?d|passwd|pwd|access[_-]?key|"
    r"private[_-]?key|credentials?)(?:[_-]?(?:id|key|value|\d+))?"
)
# An IBAN has its country's exact length, written compact or in groups separated by spaces.
_IBAN_RE = re.compile(
    r"\b(?:"
    + "|".join(f"{cc}\\d{{2}}(?: ?[A-Z0-9]){{{n - 4}}}" for cc, n in sorted(IBAN_LENGTHS.items()))
    + r")(?![A-Z0-9])"
)
# Card numbers as printed: 4-4-4-4(-3) with one separator, Amex 4-6-5, or 13 to 19 digits.
_CARD_RE = re.compile(
    r"(?<![\d.-])(?:\d{4}(?P<sep>[ -])\d{4}(?P=sep)\d{4}(?P=sep)\d{1,4}(?:(?P=sep)\d{3})?"
    r"|\d{4}([ -])\d{6}\2\d{4,5}|\d{13,19})(?![\d-]|[.,]\d)"
)

# Ordered from most to least specific: on overlapping matches the earlier detector wins.
DETECTORS: tuple[Detector, ...] = (
    Detector(
        "private_key",
        "critical",
        re.compile(
            r"-----BEGIN (?P<t>[A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----.*?-----END (?P=t)PRIVATE KEY"
            r"( BLOCK)?-----",
            re.DOTALL,
        ),
        lambda v: "-----BEGIN PRIVATE KEY----- [redacted]",
    ),
    # A truncated key (no END line) still gives its body away.
    Detector(
        "private_key",
        "critical",
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----(?:\r?\n[A-Za-z0-9+/=]+$)*",
            re.MULTILINE,
        ),
        lambda v: "-----BEGIN PRIVATE KEY----- [redacted]",
    ),
    Detector(
        "aws_access_key_id",
        "high",
        re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"),
        lambda v: _mask(v, 4),
    ),
    Detector(
        "aws_secret_access_key",
        "critical",
        re.compile(
            r"(?i)aws_?secret_?(?:access_?)?key\s*[:=]\s*[\"']?(?P<s>[A-Za-z0-9/+=]{40})(?![\w/+=])"
        ),
        lambda v: _mask(v),
    ),
    Detector(
        "github_token",
        "high",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})\b"),
        lambda v: _mask(v, v.index("_") + 1),
    ),
    Detector(
        "slack_token", "high", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), lambda v: _mask(v, 5)
    ),
    Detector(
        "slack_webhook",
        "high",
        re.compile(r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+"),
        lambda v: "https://hooks.slack.com/services/****",
    ),
    Detector(
        "stripe_key",
        "critical",
        re.compile(r"\b[sr]k_live_[0-9A-Za-z]{20,}\b"),
        lambda v: _mask(v, 8),
    ),
    Detector(
        "google_api_key",
        "high",
        re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![\w-])"),
        lambda v: _mask(v, 4),
    ),
    Detector(
        "jwt",
        "medium",
        re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}"),
        lambda v: _mask(v, 3),
    ),
    Detector(
        "url_password",
        "high",
        re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:(?P<s>[^/\s@]+)@", re.IGNORECASE),
        lambda v: _mask(v),
        lambda v: not _PLACEHOLDER_RE.match(v),
    ),
    Detector(
        "generic_secret",
        "medium",
        re.compile(
            rf"(?i)\b{_SECRET_NAME}[\"']?\s*(?::|=|:=|=>)\s*(?P<q>[\"']?)(?P<s>[^\s\"'#,;]{{6,}})(?P=q)"
        ),
        lambda v: _mask(v),
        _accept_generic,
    ),
    Detector(
        "iban", "medium", _IBAN_RE, lambda v: v[:4] + " **** " + v.replace(" ", "")[-3:], iban_valid
    ),
    Detector("credit_card", "high", _CARD_RE, _mask_card, _accept_card),
    # Personal data (e-mails, phones) is "medium": leaking it is a GDPR incident, not a nuisance.
    Detector(
        "email",
        "medium",
        re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
        _mask_email,
    ),
)
PHONE = Detector(
    "phone",
    "medium",
    re.compile(
        r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){2,4}"
        r"|0[1-9](?:[ .]?\d{2}){4})(?![\w])"
    ),
    lambda v: _mask(v, 3, 2),
)


def _spans(text: str, detector: Detector) -> list[tuple[int, int, str]]:
    found = []
    for match in detector.pattern.finditer(text):
        group = "s" if "s" in detector.pattern.groupindex else 0
        value = match.group(group)
        if value and detector.accept(value):
            found.append((match.start(group), match.end(group), value))
    return found


def scan(text: str, phones: bool = False, severity_threshold: str = "low") -> ScanResult:
    """Run the detectors over `text` and mask what they find.

    Phone numbers are looked for only when `phones` is true (they are noisy). Detectors below
    `severity_threshold` do not run at all, so what they would find stays unmasked.
    """
    floor = SEVERITIES.index(severity_threshold)
    candidates = (*DETECTORS, PHONE) if phones else DETECTORS
    detectors = [d for d in candidates if SEVERITIES.index(d.severity) >= floor]
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    taken: list[tuple[int, int]] = []  # accepted spans, kept sorted
    findings: list[Finding] = []
    for detector in detectors:
        for start, end, value in _spans(text, detector):
            at = bisect.bisect_left(taken, (start, end))
            before = taken[at - 1] if at else None
            after = taken[at] if at < len(taken) else None
            if (before and before[1] > start) or (after and after[0] < end):
                continue
            taken.insert(at, (start, end))
            line = bisect.bisect_right(line_starts, start)
            column = start - line_starts[line - 1] + 1
            findings.append(
                Finding(
                    detector.kind, detector.severity, line, column, detector.mask(value), start, end
                )
            )
    findings.sort(key=lambda f: f.start)
    pieces, cursor = [], 0
    for finding in findings:
        pieces += [text[cursor : finding.start], finding.masked_value]
        cursor = finding.end
    pieces.append(text[cursor:])
    return ScanResult("".join(pieces), findings)


def process(task: dict[str, Any]) -> dict[str, Any]:
    """Task -> masked text, findings, counts and overall risk.

    Task: `{"text": str, "phones"?: bool, "severity_threshold"?: "low" | "medium" | "high" |
    "critical", "max_findings"?: int}`. `max_findings` caps the list of findings reported (counts
    and masking still cover every finding).
    """
    if not isinstance(task, dict):
        raise ValueError(f"task must be a JSON object, got {type(task).__name__}")
    text = task.get("text")
    if not isinstance(text, str):
        got = "nothing" if text is None else type(text).__name__
        raise ValueError(f"'text' must be a string, got {got}")
    phones = task.get("phones", False)
    if not isinstance(phones, bool):
        raise ValueError(f"'phones' must be true or false, got {phones!r}")
    threshold = task.get("severity_threshold", "low")
    if threshold not in SEVERITIES:
        raise ValueError(
            f"'severity_threshold' must be one of {', '.join(SEVERITIES)}, got {threshold!r}"
        )
    limit = task.get("max_findings")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"'max_findings' must be a non-negative integer, got {limit!r}")
    return scan(text, phones, threshold).to_dict(limit)
