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
- A detector's matches are exactly its pattern's `finditer` matches. Its optional *windows* (a
  cheap search, mostly `str.find`) only decide where the pattern is tried, and must hold every
  position where a match could start; `tests/plugins/test_security_analyst.py` checks both ways
  agree over a corpus of planted secrets and near misses.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, AnyStr

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


# ------------------------------------------------------------------------------ windows
#
# Tried at every position of a text, most patterns cost a millisecond or more per 64 KiB: Python's
# `re` skips ahead only to a literal first character, and these start with `\b`, a lookbehind or
# a class. So a detector may name its windows: the ranges `(lo, hi)` (both included) where one of
# its matches can start, found by `str.find` on the text or on a cheap view of it. The pattern is
# then tried only there, with `pattern.match(text, at)`, which sees the characters before `at`
# (for `\b` and lookbehinds) just as `finditer` does. Windows come sorted, `lo` and `hi` both
# non-decreasing; a detector without windows (or whose windows give None) uses `finditer`.

Windows = list[tuple[int, int]]

# Runs of characters, matched backwards from where a window ends (see `_Subject.run_start`).
_NAME_CHARS = r"[\w.-]"  # a generic secret's name, before its marker
_SCHEME_CHARS = "[a-z0-9+.-]"  # a URL's scheme, before "://" (case-insensitive)
_LOCAL_CHARS = "[A-Za-z0-9._%+-]"  # an e-mail's local part, before "@"
_WIDE = 256  # a window wider than this is searched in one call, not tried position by position
_SHAPE = bytes.maketrans(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"0" * 10 + b"A" * 26)


class _Subject:
    """The text of one scan, with the views the windows search (each built on first use)."""

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def folded(self) -> str | None:
        """The text lower-cased so that where an ASCII word matches under `re.IGNORECASE`, the
        word itself stands at the same offset here (`re` also lets "\u0130" and "\u0131" match
        "i" and "\u017f" match "s"); None if the offsets could not be kept."""
        folded = self.text.replace("\u0130", "i").lower()
        if len(folded) != len(self.text):
            return None
        if not folded.isascii():
            folded = folded.replace("\u017f", "s").replace("\u0131", "i")
        return folded

    @cached_property
    def shape(self) -> bytes | None:
        """An ASCII text with each digit as "0" and each capital as "A"; None if not ASCII."""
        return self.text.encode("ascii").translate(_SHAPE) if self.text.isascii() else None

    @cached_property
    def backwards(self) -> str:
        return self.text[::-1]

    def run_start(self, chars: re.Pattern[str], end: int, floor: int) -> int:
        """Where the run of `chars` (a `[...]*` pattern) that ends at `end` starts, or `floor`."""
        size = len(self.text)
        run = chars.match(self.backwards, size - end, size - floor)
        assert run is not None  # a `[...]*` pattern always matches
        return end - (run.end() - run.start())


def _find_all(haystack: AnyStr, needles: Iterable[AnyStr]) -> list[int]:
    """Every offset where one of `needles` starts in `haystack`, overlaps included, sorted."""
    found = set()
    for needle in needles:
        at = haystack.find(needle)
        while at >= 0:
            found.add(at)
            at = haystack.find(needle, at + 1)
    return sorted(found)


def _starting(*literals: str) -> Callable[[_Subject], Windows | None]:
    """Windows of a pattern whose matches start with one of `literals`."""
    return lambda subject: [(at, at) for at in _find_all(subject.text, literals)]


def _starting_folded(*words: str) -> Callable[[_Subject], Windows | None]:
    """Windows of a case-insensitive pattern whose matches start with one of `words`."""

    def windows(subject: _Subject) -> Windows | None:
        folded = subject.folded
        return None if folded is None else [(at, at) for at in _find_all(folded, words)]

    return windows


def _run_before(
    chars: str, flags: int, *words: str, folded: bool = False
) -> Callable[[_Subject], Windows | None]:
    """Windows of a pattern whose matches start in a run of `chars` leading up to one of `words`
    (a generic secret's name up to its marker, a URL's scheme up to "://", an e-mail's local part
    up to "@"), or at the word itself."""
    run = re.compile(chars + "*", flags)

    def windows(subject: _Subject) -> Windows | None:
        haystack = subject.folded if folded else subject.text
        if haystack is None:
            return None
        found, floor = [], 0
        for at in _find_all(haystack, words):
            # Stopping at the previous word is enough: a run reaching it started in its window.
            found.append((subject.run_start(run, at, floor), at))
            floor = at + 1
        return found

    return windows


def _iban_windows(subject: _Subject) -> Windows | None:
    """An IBAN starts with two capitals (its country) and two digits."""
    if subject.shape is None:
        return [(at, at) for at in _overlapping(_COUNTRY_AND_CHECK, subject.text)]
    return [(at, at) for at in _find_all(subject.shape, [b"AA00"])]


def _card_windows(subject: _Subject) -> Windows | None:
    """A card number starts a run of at least four digits (no digit may come before it)."""
    shape = subject.shape
    if shape is None:
        return [(m.start(), m.start()) for m in _FOUR_DIGITS.finditer(subject.text)]
    return [(at, at) for at in _find_all(shape, [b"0000"]) if at == 0 or shape[at - 1] != 0x30]


def _overlapping(pattern: re.Pattern[str], text: str) -> Iterator[int]:
    match = pattern.search(text)
    while match is not None:
        yield match.start()
        match = pattern.search(text, match.start() + 1)


_COUNTRY_AND_CHECK = re.compile(r"[A-Z]{2}\d{2}")
_FOUR_DIGITS = re.compile(r"\d{4,}")  # each match starts a run of digits: greedy, then skips it


@dataclass(frozen=True)
class Detector:
    """A pattern; the secret is group "s" when the pattern has one, else the whole match.
    `windows` (see above) must hold every position where a match of `pattern` can start."""

    kind: str
    severity: str
    pattern: re.Pattern[str]
    mask: Callable[[str], str]
    accept: Callable[[str], bool] = lambda value: True
    windows: Callable[[_Subject], Windows | None] | None = None


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
    _NAME_CHARS + r"*?(?:api[_-]?key|secret|token|passw(?:or)?d|passwd|pwd|access[_-]?key|"
    r"private[_-]?key|credentials?)(?:[_-]?(?:id|key|value|\d+))?"
)
# How each marker of _SECRET_NAME starts.
_SECRET_MARKERS = ("api", "secret", "token", "passw", "pwd", "access", "private", "credential")
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
        windows=_starting("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA"),
    ),
    Detector(
        "aws_secret_access_key",
        "critical",
        re.compile(
            r"(?i)aws_?secret_?(?:access_?)?key\s*[:=]\s*[\"']?(?P<s>[A-Za-z0-9/+=]{40})(?![\w/+=])"
        ),
        lambda v: _mask(v),
        windows=_starting_folded("aws"),
    ),
    Detector(
        "github_token",
        "high",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})\b"),
        lambda v: _mask(v, v.index("_") + 1),
        windows=_starting("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    Detector(
        "slack_token",
        "high",
        re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
        lambda v: _mask(v, 5),
        windows=_starting("xox"),
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
        windows=_starting("sk_live_", "rk_live_"),
    ),
    Detector(
        "google_api_key",
        "high",
        re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![\w-])"),
        lambda v: _mask(v, 4),
        windows=_starting("AIza"),
    ),
    Detector(
        "jwt",
        "medium",
        re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}"),
        lambda v: _mask(v, 3),
        windows=_starting("eyJ"),
    ),
    Detector(
        "url_password",
        "high",
        re.compile(rf"\b[a-z]{_SCHEME_CHARS}*://[^/\s:@]+:(?P<s>[^/\s@]+)@", re.IGNORECASE),
        lambda v: _mask(v),
        lambda v: not _PLACEHOLDER_RE.match(v),
        _run_before(_SCHEME_CHARS, re.IGNORECASE, "://"),
    ),
    Detector(
        "generic_secret",
        "medium",
        re.compile(
            rf"(?i)\b{_SECRET_NAME}[\"']?\s*(?::|=|:=|=>)\s*(?P<q>[\"']?)(?P<s>[^\s\"'#,;]{{6,}})(?P=q)"
        ),
        lambda v: _mask(v),
        _accept_generic,
        _run_before(_NAME_CHARS, re.IGNORECASE, *_SECRET_MARKERS, folded=True),
    ),
    Detector(
        "iban",
        "medium",
        _IBAN_RE,
        lambda v: v[:4] + " **** " + v.replace(" ", "")[-3:],
        iban_valid,
        _iban_windows,
    ),
    Detector("credit_card", "high", _CARD_RE, _mask_card, _accept_card, _card_windows),
    # Personal data (e-mails, phones) is "medium": leaking it is a GDPR incident, not a nuisance.
    Detector(
        "email",
        "medium",
        re.compile(rf"\b{_LOCAL_CHARS}+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{{2,}}\b"),
        _mask_email,
        windows=_run_before(_LOCAL_CHARS, 0, "@"),
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


def _matches(subject: _Subject, detector: Detector) -> Iterator[re.Match[str]]:
    """`detector.pattern.finditer(text)`, trying the pattern only inside the detector's windows."""
    pattern, text = detector.pattern, subject.text
    windows = None if detector.windows is None else detector.windows(subject)
    if windows is None:
        yield from pattern.finditer(text)
        return
    done = 0  # every match that starts before `done` has been yielded
    for lo, hi in windows:
        at = max(lo, done)
        if hi - at > _WIDE:  # a long run (minified data): one search gives the leftmost match
            match = pattern.search(text, at)
            if match is None:
                return
            yield match
            done = match.end()
            continue
        while at <= hi:
            match = pattern.match(text, at)
            if match is None:
                at += 1
            else:  # windowed patterns never match the empty string, so this moves on
                yield match
                at = done = match.end()
        done = max(done, hi + 1)


def _spans(subject: _Subject, detector: Detector) -> list[tuple[int, int, str]]:
    found = []
    group = "s" if "s" in detector.pattern.groupindex else 0
    for match in _matches(subject, detector):
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
    subject = _Subject(text)
    for detector in detectors:
        for start, end, value in _spans(subject, detector):
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
