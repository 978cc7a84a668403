"""Text handling before routing: clause splitting, the command-word typo fixer, question cues, encoder text."""

from __future__ import annotations

import re
from collections.abc import Collection

from agents.routing.paths import PLACEHOLDERS, QUOTED_RE, find_paths, path_kind

NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "hundred": 100,
    "once": 1,
    "twice": 2,
}
#: a number in digits or words, as a regex group
NUM = r"(\d+|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")"

#: verbs that start a command; a clause boundary at "," or "and" needs one on both sides
COMMAND_VERBS = frozenset(
    {
        "ingest", "import", "add", "load", "register", "upload", "scan",
        "caption", "recaption", "describe", "annotate",
        "train", "retrain", "fine-tune", "finetune", "fit",
        "evaluate", "eval", "benchmark", "test", "score", "measure", "assess",
        "index", "reindex", "re-index", "build", "rebuild", "refresh", "embed", "update",
        "search", "find", "look", "locate", "retrieve",
        "improve", "optimise", "optimize", "run", "start", "launch", "kick",
        "explain", "make", "create", "generate", "produce", "write", "compute",
    }
)  # fmt: skip
#: words the leading-word typo fixer may correct to (a superset of the command verbs)
_TYPO_TARGETS = sorted(
    COMMAND_VERBS | {"show", "status", "why", "what", "how", "which", "where", "list", "give", "tell"}
)
_TYPO_TARGETS_SET = frozenset(_TYPO_TARGETS)
#: fillers before the verb of a clause
_FILLER_RE = re.compile(
    r"^(?:(?:please|kindly|now|also|just|then|and|first|next|finally|afterwards|after that|"
    r"can you|could you|would you|will you|go ahead and|i want to|i'd like to|i would like to|"
    r"let's|lets|let us)[\s,]+)+",
    re.IGNORECASE,
)
_BOUNDARY_RE = re.compile(
    r"\s*;\s*(?:and\s+)?(?:then\s+)?"
    r"|\s*,\s*(?:and\s+)?then\s+|\s+and\s+then\s+|\s+then\s+"
    r"|\s*,\s*(?:and\s+)?|\s+and\s+",
    re.IGNORECASE,
)
MODEL_RE = re.compile(
    r"(?<![\w/.-])((?:skyscout|skyclip|remoteclip|open_?clip)-[\w.-]*[\w])(?![\w/-])", re.IGNORECASE
)
MODEL_ID_RE = re.compile(r"(?<![\w/.-])(mv-[\w-]*\w)(?![\w/-])", re.IGNORECASE)

#: question openings whose intent the content words would otherwise drown out ("why did you re-index?"
#: is about a reason, not about indexing): they narrow the candidates; the examples still decide
#: between those and out-of-scope, and the threshold still applies
QUESTION_CUES: tuple[tuple[re.Pattern[str], frozenset[str]], ...] = (
    (
        re.compile(
            r"^(?:(?:can|could|would)\s+you\s+)?(?:tell\s+me\s+|explain\s+)?"
            r"(?:why\b|how\s+come\b|what\s+(?:made|caused|led|prompted|triggered)\b"
            r"|what(?:'s|\s+is|\s+was)\s+the\s+reason\b|for\s+what\s+reason\b|justify\b)",
            re.IGNORECASE,
        ),
        frozenset({"explain"}),
    ),
    (re.compile(r"^how\s+many\b", re.IGNORECASE), frozenset({"status"})),
)
#: words that make a clause a detection (coordinates, maps, GeoJSON) rather than a plain search
DETECT_CUE = re.compile(
    r"\bgeo\s?json\b|\bdetect(?:ions?|s)?\b|\bmap\s+(?:every|all|each|the)\b|\bpolygons?\b|\bcoordinates\b"
    r"|\bexport\b|\boutline\b|\bshapefile\b|\bheat\s?map\b|\bwhere\s+(?:are|is)\b.*\bin\s+(?:the\s+|this\s+)?"
    r"(?:scene|area|bbox|box|region)\b",
    re.IGNORECASE,
)
#: intents only a cue can select (a clause without one is never routed to them)
CUE_ONLY_INTENTS = frozenset({"detect"})


def to_number(token: str) -> int:
    """The value of a number matched by :data:`NUM` ("12", "twelve", "twice")."""
    return int(token) if token.isdigit() else NUMBER_WORDS[token.lower()]


def cut(text: str, start: int, end: int) -> str:
    """``text`` with ``text[start:end]`` replaced by a space."""
    return text[:start] + " " + text[end:]


def squash(text: str) -> str:
    """``text`` with runs of whitespace made one space and stray punctuation trimmed from both ends."""
    return re.sub(r"\s+", " ", text).strip(" \t,;:.!?-")


def _damerau(a: str, b: str) -> int:
    """Optimal-string-alignment edit distance (insert, delete, substitute, swap two neighbours)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


class TypoFixer:
    """Corrects a misspelt command word at the start of a clause ("serach" -> "search", "wy" -> "why").

    A word is corrected only when it is not in ``dictionary`` (real words such as "snow", "who" or "and"
    are never touched), starts with the same letter as a command word, and is one typo away from it (two
    for words of seven letters or more). With an empty dictionary nothing is corrected, since without one
    "snow" and "show" cannot be told apart.
    """

    def __init__(self, dictionary: Collection[str] = ()) -> None:
        self.dictionary = frozenset(w.lower() for w in dictionary)

    def correct(self, word: str) -> str | None:
        """The command word ``word`` is a misspelling of, or None."""
        low = word.lower()
        if not self.dictionary or low in self.dictionary or low in _TYPO_TARGETS_SET or len(low) < 2:
            return None
        best: tuple[int, str] | None = None
        for target in _TYPO_TARGETS:
            if target[0] != low[0] or low.startswith(target):
                continue
            dist = _damerau(low, target)
            if dist <= (1 if len(target) < 7 else 2) and (best is None or dist < best[0]):
                best = (dist, target)
        return best[1] if best else None

    def fix_leading(self, text: str) -> str:
        """``text`` with its first word after any fillers ("please", "can you") corrected if misspelt."""
        m = _FILLER_RE.match(text)
        start = m.end() if m else 0
        w = re.match(r"[A-Za-z][A-Za-z-]*", text[start:])
        if not w:
            return text
        fixed = self.correct(w.group(0))
        return text if fixed is None else text[:start] + fixed + text[start + len(w.group(0)) :]


_NO_FIXES = TypoFixer()


def _leading_word(clause: str) -> str | None:
    """The first word of a clause after any fillers, lower-cased."""
    m = re.match(r"[A-Za-z][A-Za-z-]*", _FILLER_RE.sub("", clause.strip()))
    return m.group(0).lower() if m else None


def question_cue(clause: str) -> frozenset[str] | None:
    """The intents a clause's opening restricts it to (besides ``unknown``), or None."""
    text = clause.strip()
    for rx, intents in QUESTION_CUES:
        if rx.match(text):
            return intents
    if DETECT_CUE.search(text):
        return frozenset({"detect"})
    return None


def _ends_clause(sep: str, piece: str, previous: str, fixer: TypoFixer) -> bool:
    """Whether the boundary ``sep`` between ``previous`` and ``piece`` starts a new command."""
    if ";" in sep:
        return True
    head = _leading_word(fixer.fix_leading(piece))
    if "then" in sep.lower():
        return head in _TYPO_TARGETS_SET  # "... then status", but not "forest then turns into farmland"
    return head in COMMAND_VERBS and _leading_word(fixer.fix_leading(previous)) in COMMAND_VERBS


def split_clauses(text: str, fixer: TypoFixer | None = None) -> list[str]:
    """Split a request into its commands.

    ``;`` always ends a command; ``then`` ends one when a command word follows ("... then status");
    ``,`` and ``and`` only when the text on both sides starts with a command verb, so "forests, rivers
    and lakes" and "why did you retrain and re-index?" stay whole. Quoted strings are never split.
    ``fixer`` corrects misspelt verbs before that check.
    """
    fixer = fixer or _NO_FIXES
    text = text.strip()
    # Protect quoted strings (they may hold commas or "and") behind placeholders.
    quoted: list[str] = []

    def _protect(m: re.Match[str]) -> str:
        quoted.append(m.group(0))
        return f"\x00{len(quoted) - 1}\x00"

    protected = QUOTED_RE.sub(_protect, text)
    pieces = _BOUNDARY_RE.split(protected)
    seps = _BOUNDARY_RE.findall(protected)
    clauses: list[str] = [pieces[0]]
    for sep, piece in zip(seps, pieces[1:], strict=True):
        if _ends_clause(sep, piece, clauses[-1], fixer) and piece.strip() and clauses[-1].strip():
            clauses.append(piece)
        else:
            clauses[-1] = clauses[-1] + sep + piece

    def _restore(s: str) -> str:
        return re.sub(r"\x00(\d+)\x00", lambda m: quoted[int(m.group(1))], s)

    out = [_restore(c).strip() for c in clauses]
    return [c for c in out if c] or [text]


def embedding_text(clause: str) -> str:
    """The text the encoder sees: paths replaced by a word for their kind, model names by "the model".

    Long paths would otherwise dominate the embedding with meaningless word pieces.
    """
    text = clause.strip()
    for hit in reversed(find_paths(text)):
        text = text[: hit.start] + PLACEHOLDERS[path_kind(hit.path)] + text[hit.end :]
    # Model names and ids say which model, not what to do with it.
    text = MODEL_RE.sub("the model", text)
    text = MODEL_ID_RE.sub("the model version", text)
    return re.sub(r"\s+", " ", text).strip() or clause
