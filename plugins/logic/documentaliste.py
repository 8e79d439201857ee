"""Index and summarize a text (English or French, plain or Markdown), deterministically.

This file is the whole agent: it imports only the standard library and is published unchanged as
the `process.py` of the `documentaliste` package, so it must stay self-contained.

Invariants:
- The same text and options always give the same result (ties are broken by position for
  sentences; by count, then alphabetically, for keywords).
- Keywords are listed in the order of the score they carry; stop words (function words, number
  words, everyday adjectives and adverbs, in English and French) are never keywords.
- Fenced code blocks are neither summarized, counted nor indexed; headings are indexed but never
  appear in the summary.
- Summary sentences are returned in the order they appear in the text, not in score order.
- `process()` raises `ValueError` with a message naming the offending field, and nothing else on
  bad input.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

WORDS_PER_MINUTE = 200
DEFAULT_MAX_SENTENCES = 3
DEFAULT_MAX_KEYWORDS = 10


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOP_WORDS_EN = _words(
    """a about above after again against all also am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each either else etc even ever every few for from further
    get gets got had hadn't has hasn't have haven't having he her here hers herself him himself his
    how however i if in into is isn't it it's its itself just let's like made make many may me
    might more most much must mustn't my myself need no nor not now of off often on once one only
    or other ought our ours ourselves out over own per rather same shall she should shouldn't so
    some such than that that's the their theirs them themselves then there there's these they
    they're this those though through thus to too under until up upon us use used uses using very
    via was wasn't we we're were weren't what when where whether which while who whom whose why
    will with within without won't would wouldn't yet you you're your yours yourself
    yourselves"""
) | _words(
    # Number words, and the everyday adjectives and adverbs that qualify a topic without naming
    # one ("two weeks", "the old cluster", "still open"): frequent in any text, so never keywords.
    """zero two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
    sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety
    hundred hundreds thousand thousands million millions billion billions dozen dozens first
    second third fourth fifth sixth seventh eighth ninth tenth last next previous twice half
    double triple single new old good bad better best worse worst big bigger biggest small
    smaller smallest large larger largest great greater greatest high higher highest low lower
    lowest long longer longest short shorter shortest little less least lot lots fewer several
    various certain different similar whole full main major minor real true early earlier late
    later latest recent recently current currently able possible likely usual usually still
    already almost always never sometimes rarely soon today yesterday tomorrow ago quite really
    enough mostly mainly nearly fully simply well back away around along across among another
    instead yes okay ok thing things something anything everything nothing someone anyone
    everyone way ways kind kinds sort"""
)
STOP_WORDS_FR = _words(
    """à afin ai aie aient ainsi alors après as au aucun aucune aujourd auprès aussi autre autres
    aux avait avaient avant avec avez avoir avons ayant bien c ça car ce ceci cela celle celles
    celui cependant ces cet cette ceux chaque chez ci comme comment d dans de des donc dont du
    elle elles en encore entre es est et étaient était étant été être eu eux fait faire fois font
    hors il ils j je jusqu l la là le les leur leurs lors lorsque lui m ma mais me même mêmes mes
    moi moins mon n ne ni non nos notre nous on ont ou où par parce pas peu peut peuvent plus
    pour pourquoi puis qu quand que quel quelle quelles quels qui s sa sans se selon sera seront
    ses si sien sinon soit sont sous souvent sur t ta tandis te tels tes toi ton tous tout toute
    toutes très tu un une vers voici voilà vos votre vous y"""
) | _words(
    # As in English: number words, everyday adjectives and adverbs, and the forms of the few
    # verbs and determiners the list above misses ("son", "suis", "déjà").
    """zéro deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze seize
    vingt trente quarante cinquante soixante cent cents mille million millions milliard
    milliards dizaine dizaines centaine centaines premier première premiers premières deuxième
    troisième quatrième cinquième second seconde dernier dernière derniers dernières prochain
    prochaine précédent précédente moitié nouveau nouvel nouvelle nouveaux nouvelles ancien
    ancienne anciens anciennes vieux vieille bon bonne bons bonnes mauvais mauvaise meilleur
    meilleure meilleurs pire grand grande grands grandes petit petite petits petites gros
    grosse haut haute bas basse long longue court courte plusieurs quelque quelques certain
    certaine certains certaines divers diverses différent différente différents différentes tel
    telle telles chacun chacune déjà toujours jamais parfois rarement bientôt maintenant ici
    hier demain ensuite enfin assez beaucoup trop tant tellement vraiment surtout presque
    environ seulement plutôt ailleurs partout oui chose choses quelqu rien personne son suis
    sommes êtes fut serait seraient eut aura aurait faut doit dès depuis pendant contre sauf
    parmi puisque quoique neuve neufs neuves"""
)
STOP_WORDS = STOP_WORDS_EN | STOP_WORDS_FR

# French elided articles and pronouns ("l'agent", "qu'il"): the word after the apostrophe counts.
_ELISIONS = _words("c d j l m n s t qu jusqu lorsqu puisqu quoiqu")
# Abbreviations whose trailing period does not end a sentence (compared lowercased, no dot).
_ABBREVIATIONS = _words(
    """mr mrs ms dr prof sr jr st vs etc e.g i.e cf fig no vol approx inc ltd co corp dept
    jan feb mar apr jun jul aug sep sept oct nov dec m mme mmes mlle mlles pr me p pp env av
    apr j.-c ex"""
)

_TOKEN_RE = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
_WORD_RE = re.compile(r"[^\W_]+(?:[-'’.,][^\W_]+)*")
_SENTENCE_END_RE = re.compile(r"[.!?…]+[\"')\]»”’]*\s+")
_ATX_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT_RE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE_RE = re.compile(r"^ {0,3}(```|~~~)")
_LIST_RE = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s+")
_RULE_RE = re.compile(r"^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$")
_INLINE_RES = (
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # images keep their alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links keep their label
    (re.compile(r"(\*\*|__|`)"), ""),
)


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    line: int
    anchor: str


@dataclass(frozen=True)
class Keyword:
    """A term, how often it occurs, and the weight it is ranked by.

    `score` is 1.0 for the strongest keyword: the term's frequency relative to the most frequent
    term, +50% when the term also occurs in a heading, scaled so the top keyword scores 1.0.
    Keywords are listed by score, then count (both descending), then alphabetically.
    """

    term: str
    count: int
    score: float
    lines: list[int]


@dataclass(frozen=True)
class Summary:
    language: str
    word_count: int
    sentence_count: int
    reading_time_minutes: float
    headings: list[Heading]
    keywords: list[Keyword]
    summary: list[str]
    summary_text: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "summary_text", " ".join(self.summary))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Block:
    """A paragraph or list item of prose, with the line where it starts."""

    text: str
    line: int


def tokenize(text: str) -> list[str]:
    """Lowercased words (letters only), French elisions removed: "L'agent" -> "agent"."""
    tokens = []
    for match in _TOKEN_RE.finditer(text.lower()):
        token = match.group().replace("’", "'")
        head, sep, tail = token.partition("'")
        if sep and head in _ELISIONS and tail:
            token = tail
        tokens.append(token)
    return tokens


def _slug(text: str, seen: Counter[str]) -> str:
    base = re.sub(r"[^\w\- ]", "", text.lower()).strip().replace(" ", "-")
    seen[base] += 1
    return base if seen[base] == 1 else f"{base}-{seen[base] - 1}"


def _clean_inline(text: str) -> str:
    for pattern, repl in _INLINE_RES:
        text = pattern.sub(repl, text)
    return text.strip()


def parse_blocks(text: str) -> tuple[list[Heading], list[_Block], list[tuple[int, str]]]:
    """Split Markdown-ish text into headings, prose blocks and the (line, text) pairs outside code.

    A paragraph followed by a `===` or `---` underline is a heading (setext), as in CommonMark; a
    `---` after a blank line is a rule, not a heading.
    """
    headings: list[Heading] = []
    blocks: list[_Block] = []
    prose_lines: list[tuple[int, str]] = []
    slugs: Counter[str] = Counter()
    paragraph: list[str] = []
    start = 0
    fence: str | None = None

    def flush() -> None:
        if paragraph:
            blocks.append(_Block(_clean_inline(" ".join(paragraph)), start))
            paragraph.clear()

    for number, line in enumerate(text.splitlines(), start=1):
        if fence is not None:
            if line.lstrip().startswith(fence):
                fence = None
            continue
        fence_match = _FENCE_RE.match(line)
        if fence_match:
            flush()
            fence = fence_match.group(1)
            continue
        prose_lines.append((number, line))
        setext = _SETEXT_RE.match(line)
        if setext and paragraph:
            title = _clean_inline(" ".join(paragraph))
            level = 1 if setext.group(1)[0] == "=" else 2
            headings.append(Heading(level, title, start, _slug(title, slugs)))
            paragraph.clear()
            continue
        atx = _ATX_RE.match(line)
        if atx:
            flush()
            title = _clean_inline(atx.group(2) or "")
            if title:
                headings.append(Heading(len(atx.group(1)), title, number, _slug(title, slugs)))
            continue
        stripped = line.strip()
        if not stripped or _RULE_RE.match(line):
            flush()
            continue
        stripped = stripped.lstrip("> ").strip()
        if _LIST_RE.match(stripped):
            # Each list item stands alone: bullets rarely end with a period.
            flush()
            stripped = _LIST_RE.sub("", stripped, count=1)
        if not paragraph:
            start = number
        paragraph.append(stripped)
    flush()
    return headings, blocks, prose_lines


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences; abbreviations ("Dr.", "e.g.", "M.") and initials stay whole."""
    sentences = []
    begin = 0
    for match in _SENTENCE_END_RE.finditer(text):
        end = match.end()
        if end < len(text) and text[end].islower():
            continue  # "e.g. something": a lowercase start is not a new sentence
        before = text[begin : match.start()].rsplit(None, 1)
        last_word = before[-1].lower().rstrip(".") if before else ""
        is_initial = len(last_word) == 1 and last_word.isalpha() and match.group()[0] == "."
        if match.group()[0] == "." and (last_word in _ABBREVIATIONS or is_initial):
            continue
        sentence = text[begin:end].strip()
        if sentence:
            sentences.append(sentence)
        begin = end
    tail = text[begin:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def detect_language(tokens: list[str]) -> str:
    """ "en", "fr" or "unknown", from which stop-word list the text uses more."""
    english = sum(1 for t in tokens if t in STOP_WORDS_EN and t not in STOP_WORDS_FR)
    french = sum(1 for t in tokens if t in STOP_WORDS_FR and t not in STOP_WORDS_EN)
    if english + french < 3:
        return "unknown"
    return "en" if english >= french else "fr"


def _content(tokens: list[str]) -> list[str]:
    return [t for t in tokens if len(t) > 2 and t not in STOP_WORDS]


def _fold_plurals(counts: Counter[str]) -> dict[str, str]:
    """Map "agents" to "agent" when both forms occur, so one concept gets one weight."""
    return {w: w[:-1] for w in counts if w.endswith(("s", "x")) and w[:-1] in counts}


def summarize(
    text: str,
    max_sentences: int = DEFAULT_MAX_SENTENCES,
    max_keywords: int = DEFAULT_MAX_KEYWORDS,
) -> Summary:
    """Extractive summary, keywords with the lines they occur on, headings and counts.

    Each term weighs its frequency relative to the most frequent term, +50% when it also occurs in
    a heading (headings name the topic). A sentence scores the sum of its term weights divided by
    the square root of its term count: a plain sum favours long sentences, a mean favours short
    ones. The first sentence gets a 10% lead bonus; near-duplicates of a chosen one are skipped.
    """
    headings, blocks, prose_lines = parse_blocks(text)
    sentences = [s for block in blocks for s in split_sentences(block.text)]
    tokens_per_sentence = [tokenize(s) for s in sentences]
    heading_terms = {t for h in headings for t in _content(tokenize(h.text))}

    counts: Counter[str] = Counter()
    for tokens in tokens_per_sentence:
        counts.update(_content(tokens))
    counts.update(t for h in headings for t in _content(tokenize(h.text)))
    folding = _fold_plurals(counts)
    folded: Counter[str] = Counter()
    for term, n in counts.items():
        folded[folding.get(term, term)] += n
    top = max(folded.values(), default=1)
    weights = {
        t: n / top * (1.5 if t in heading_terms or t + "s" in heading_terms else 1.0)
        for t, n in folded.items()
    }

    scored: list[tuple[float, int]] = []
    for index, tokens in enumerate(tokens_per_sentence):
        terms = [folding.get(t, t) for t in _content(tokens)]
        if len(terms) < 2:
            continue  # fragments ("Thanks!", "See below.") say nothing on their own
        score = sum(weights[t] for t in terms) / math.sqrt(len(terms))
        scored.append((score * (1.1 if index == 0 else 1.0), index))
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    chosen: list[int] = []
    chosen_terms: list[set[str]] = []
    for _, index in scored:
        if len(chosen) >= max_sentences:
            break
        term_set = set(_content(tokens_per_sentence[index]))
        if any(len(term_set & other) / len(term_set | other) > 0.7 for other in chosen_terms):
            continue
        chosen.append(index)
        chosen_terms.append(term_set)

    strongest = max(weights.values(), default=1.0)
    # Ranked by the rounded score that is printed, so the list reads in the order of its scores.
    scores = {t: round(w / strongest, 4) for t, w in weights.items()}
    ranked = sorted(folded.items(), key=lambda item: (-scores[item[0]], -item[1], item[0]))
    ranked = ranked[:max_keywords]
    wanted = {term for term, _ in ranked}
    lines: dict[str, list[int]] = {term: [] for term in wanted}
    for number, line in prose_lines:
        for token in set(tokenize(line)):
            term = folding.get(token, token)
            if term in wanted and len(lines[term]) < 20 and number not in lines[term][-1:]:
                lines[term].append(number)
    keywords = [Keyword(term, n, scores[term], lines[term]) for term, n in ranked]

    word_count = sum(len(_WORD_RE.findall(line)) for _, line in prose_lines)
    all_tokens = [t for tokens in tokens_per_sentence for t in tokens]
    return Summary(
        language=detect_language(all_tokens),
        word_count=word_count,
        sentence_count=len(sentences),
        reading_time_minutes=round(word_count / WORDS_PER_MINUTE, 1),
        headings=headings,
        keywords=keywords,
        summary=[sentences[i] for i in sorted(chosen)],
    )


def _positive_int(task: dict[str, Any], key: str, default: int) -> int:
    value = task.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key!r} must be a positive integer, got {value!r}")
    return value


def process(task: dict[str, Any]) -> dict[str, Any]:
    """Task `{"text": str, "max_sentences"?: int, "max_keywords"?: int}` -> summary as a dict."""
    if not isinstance(task, dict):
        raise ValueError(f"task must be a JSON object, got {type(task).__name__}")
    text = task.get("text")
    if not isinstance(text, str):
        got = "nothing" if text is None else type(text).__name__
        raise ValueError(f"'text' must be a string, got {got}")
    return summarize(
        text,
        max_sentences=_positive_int(task, "max_sentences", DEFAULT_MAX_SENTENCES),
        max_keywords=_positive_int(task, "max_keywords", DEFAULT_MAX_KEYWORDS),
    ).to_dict()
