"""The labeling engine: sentence split, mention matching, negation / uncertainty scopes, report-level aggregation.

Written by hand with compiled regular expressions because the rule-based alternatives need a constituency parser
(CheXpert/NegBio) or pin an old spaCy/numpy (medspacy); see docs/labeler.md for the rules and their measured quality.

Per mention, in CheXpert's order of precedence:
  1. pre-negation uncertainty ("cannot exclude X", "X is not excluded", "no new X")  -> -1
  2. negation ("no X", "without X", "free of X", "X has resolved", "normal heart size") -> 0
  3. post-negation uncertainty ("possible X", "X or Y", "may represent X", "X is suspected") -> -1
  4. otherwise -> 1
Per report, across mentions of one observation: 1 beats -1 beats 0. No Finding is 1 when no mention other than Support
Devices (including the "other finding" phrases such as emphysema or granuloma) is positive or uncertain, else None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deepmedix.labeler.phrases import MENTIONS, UNMENTIONS

OBSERVATIONS: tuple[str, ...] = (
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
    "No Finding",
)

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1


def _union(fragments: list[str]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(fragments) + r")\b")


_MENTION_RES = {name: _union(frags) for name, frags in MENTIONS.items()}
_UNMENTION_RES = {name: _union(frags) for name, frags in UNMENTIONS.items()}
# One cheap pass tells whether a sentence mentions anything at all.
_ANY_MENTION_RE = _union([f for frags in MENTIONS.values() for f in frags])

# --- text normalisation and sentences -----------------------------------------------------------------------------
_AND_OR_RE = re.compile(r"\band/or\b")
_SLASH_RE = re.compile(r"(?<=[a-z])/(?=[a-z])")
_SENTENCE_SPLIT_RE = re.compile(r"(?<!\d)\.(?!\d)|[!?\n]+|(?<=\d)\.(?=\s|$)")
_SPACE_RE = re.compile(r"\s+")


def normalize(text: str) -> str:
    text = text.lower()
    text = _AND_OR_RE.sub("or", text)
    text = _SLASH_RE.sub(" or ", text)
    return text


def split_sentences(text: str) -> list[str]:
    """Lower-cased, normalised sentences (periods not inside numbers, '!', '?', line breaks)."""
    parts = (_SPACE_RE.sub(" ", p).strip() for p in _SENTENCE_SPLIT_RE.split(normalize(text)))
    return [p for p in parts if p]


# --- trigger vocabularies ------------------------------------------------------------------------------------------
def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b")


# A clause boundary ends every scope: another statement starts after it.
_CLAUSE_BREAK_RE = re.compile(
    r"[;:]|\b(?:but|however|although|though|except|aside from|apart from|other than|which|whereas|while|yet|"
    r"otherwise|with the exception)\b|,(?=\s*(?:the|there|this|these|it|a|an)\b)|\bthere (?:is|are|was|were|has|have)\b"
)
# Look like negations but are not ("no change in the effusion").
_PSEUDO_NEGATION_RE = _rx(
    r"no (?:significant |appreciable |interval |substantial |definite |radiographic |major )?(?:change|increase|decrease|progression|worsening)\w*",
    r"not (?:significantly |substantially |markedly |appreciably )?(?:changed|increased|decreased|only)",
    r"without (?:significant |interval )?(?:change|progression)",
    r"not necessarily",
    r"no longer (?:appears? )?(?:enlarged|prominent)",
)

# 1. Uncertainty that overrides negation (CheXpert's pre_negation_uncertainty).
_PRE_NEG_UNCERTAIN_BEFORE = _rx(
    r"can ?not (?:be )?(?:entirely |completely |definitely |totally )?(?:exclude|excluded|rule out|ruled out)",
    r"can't (?:be )?(?:exclude|excluded|rule out|ruled out)",
    r"not (?:be )?(?:entirely |completely |definitely )?(?:excluded|ruled out)",
    r"difficult to (?:exclude|rule out)",
    r"no (?:definite )?new",
    r"no evidence to rule out",
)
_PRE_NEG_UNCERTAIN_AFTER = _rx(
    r"(?:can ?not|can't|could not|not|may not) (?:be )?(?:entirely |completely |definitely |totally |fully |confidently )?(?:excluded|ruled out)",
    r"is not excluded",
)

# 2. Negation.
_NEGATION_BEFORE = _rx(
    r"no",
    r"not",
    r"nor",
    r"without",
    r"negative for",
    r"free of",
    r"clear of",
    r"absence of",
    r"absent",
    r"resolution of",
    r"resolved",
    r"resolving",
    r"removal of",
    r"rule out",
    r"ruled out",
    r"(?:to )?exclude",
    r"rather than",
    r"history of",
    r"disappearance of",
    r"interval clearing of",
    r"clearing of",
    r"neither",
)
# "normal heart size": adjectives that negate only a mention a few words after them.
_NORMAL_BEFORE = _rx(r"normal", r"unremarkable", r"normal-sized", r"normally sized", r"clear", r"negative")
_NORMAL_WINDOW_WORDS = 4
_NEGATION_WINDOW_WORDS = 10
_NEGATION_AFTER = _rx(
    r"(?:are|is|was|were|appears?|remains?|now|otherwise)? ?(?:at |within |of |in )?(?:the )?(?:top |upper |high |low )?(?:limits? of |range of )?normal",
    r"within (?:the )?normal limits?",
    r"within (?:the )?limits of normal",
    r"unremarkable",
    r"(?:has|have)? ?(?:resolved|cleared|disappeared|been removed)",
    r"resolved",
    r"removed",
    r"absent",
    r"negative",
    r"(?:is|are|was|were)? ?not (?:\w+ )?(?:seen|identified|present|visualized|demonstrated|evident|appreciated|enlarged|noted|detected|observed|apparent|definitely seen)",
    r"no longer (?:\w+ )?(?:seen|visualized|present|evident|identified|demonstrated|visible)",
)
_POST_WINDOW_WORDS = 6
_POST_NEGATION_WINDOW_WORDS = 10
# Words that end the backward reach of a trailing trigger: "cardiomegaly with normal vascularity".
_POST_BLOCKER_RE = _rx(
    r"with", r"without", r"of", r"in", r"within", r"at", r"from", r"to", r"by", r"for", r"on", r"no", r"due"
)

# 3. Uncertainty.
_UNCERTAIN_BEFORE = _rx(
    r"possibl[ey]",
    r"probabl[ey]",
    r"(?:less |more |most )?likely",
    r"unlikely",
    r"questionabl[ey]",
    r"question(?:ed)? of",
    r"suspect(?:ed)?",
    r"suspicious(?: for)?",
    r"suspicion (?:of|for)",
    r"concern(?:ing)? for",
    r"worrisome for",
    r"suggest\w*",
    r"suggestion of",
    r"may",
    r"might",
    r"could",
    r"can represent",
    r"presum\w+",
    r"differential",
    r"considerations?",
    r"consider",
    r"versus",
    r"vs",
    r"equivocal",
    r"indeterminate",
    r"borderline",
    r"secondary to",
    r"correlat\w+ (?:clinically )?for",
    r"cannot be (?:entirely )?distinguished from",
    r"possibility of",
)
_UNCERTAIN_AFTER = _rx(
    # "X is likely", "X, likely" / "atelectasis less likely" at the end of the clause; not "X likely reflects Y"
    r"(?:is|are|was|were|remains?|seems?|appears?) (?:also |most |more |less )?(?:possible|probable|likely|unlikely|suspected|questioned|questionable|favored|considered|borderline|equivocal|indeterminate)",
    r"(?:(?:also|most|more|less) )?(?:possible|probable|likely|unlikely|suspected|questioned|favored)(?=\s*$)",
    r"versus",
    r"vs",
    # "X may be present"; not "X may represent Y", where X is the finding seen and Y the guess
    r"(?:may|might|could|can|would) (?:also )?(?:be (?:present|seen|noted|identified|there)|have this appearance)",
    r"(?:(?:would|could|may|might) be )?a (?:possibility|consideration)",
    r"(?:is|are)? ?not (?:well|clearly|completely|fully|optimally)[- ](?:seen|visualized|evaluated|assessed)",
    r"(?:poorly|incompletely|not well) (?:evaluated|visualized|assessed|seen)",
    r"obscured",
)
_UNCERTAIN_WINDOW_WORDS = 8
# "atelectasis or consolidation": a mention joined to another by "or" is one of alternatives.
_OR_AFTER_RE = re.compile(r"^(?:\s*,)?\s+or\b")
_OR_BEFORE_RE = re.compile(r"\bor\s+(?:\S+\s+){0,2}$")
# CheXpert: a stable / unchanged heart or mediastinal contour is uncertain for enlargement.
_STABLE_RE = _rx(r"stable", r"unchanged", r"similar", r"not changed", r"no change", r"again")
# CheXpert: these edema mentions are uncertain by themselves.
_ALWAYS_UNCERTAIN = {
    "Edema": _rx(r"vascular congestion", r"pulmonary congestion", r"indistinctness", r"vascular prominence"),
    "Pleural Effusion": _rx(r"blunt\w*", r"costophrenic \w+"),
}
_HEART_FAILURE_RE = _rx(r"chf", r"heart failure")
# Mentions that name an anatomical structure rather than a finding ("the heart", "mediastinal contour"): they are
# positive only with a word of enlargement near them, otherwise not a mention at all ("the heart and lungs have not
# changed"); negation and uncertainty apply to them as usual.
_ANATOMY_RE = re.compile(
    r"(?:the )?heart(?: size)?|cardiac (?:size|shadow|contours?|silhouette)(?: and vascularity)?|"
    r"(?:cardio)?mediastin\w*(?: \w+)?|contours?|pericardial silhouette"
)
_ENLARGED_RE = _rx(
    r"enlarg\w*",
    r"large",
    r"larger",
    r"prominen\w*",
    r"increas\w*",
    r"widen\w*",
    r"wide",
    r"big",
    r"dilat\w*",
    r"globular",
    r"accentuat\w*",
)
# The enlargement word must describe this structure: it may not sit across a comma or an "and" from it.
_PHRASE_BREAK_RE = re.compile(r",|\band\b")
_ENLARGED_WINDOW_WORDS = 6
_WORD_RE = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class Mention:
    """One matched phrase and the label it got, with the rule that decided it."""

    observation: str
    text: str
    sentence: str
    start: int
    end: int
    label: int
    rule: str


def _n_words(text: str) -> int:
    return len(_WORD_RE.findall(text))


def _mask_pseudo(text: str) -> str:
    return _PSEUDO_NEGATION_RE.sub(lambda m: "~" * len(m.group(0)), text)


def _clause(sentence: str, start: int, end: int) -> tuple[str, str]:
    """The parts of the mention's clause before and after ``sentence[start:end]``."""
    clause_start, clause_end = 0, len(sentence)
    for m in _CLAUSE_BREAK_RE.finditer(sentence):
        if m.end() <= start:
            clause_start = m.end()
        elif m.start() >= end:
            clause_end = m.start()
            break
    return sentence[clause_start:start], sentence[end:clause_end]


def _last_before(pattern: re.Pattern[str], left: str, window_words: int) -> re.Match[str] | None:
    """The last trigger in ``left`` that ends within ``window_words`` words of the mention."""
    found = None
    for m in pattern.finditer(left):
        found = m
    if found is None or _n_words(left[found.end() :]) > window_words:
        return None
    return found


def _first_after(
    pattern: re.Pattern[str], right: str, window_words: int, comma_ends: bool = False
) -> re.Match[str] | None:
    """The first trigger in ``right`` within ``window_words`` words, with no blocking preposition in between."""
    m = pattern.search(right)
    if m is None:
        return None
    gap = right[: m.start()]
    if _n_words(gap) > window_words or _POST_BLOCKER_RE.search(gap) or (comma_ends and "," in gap):
        return None
    return m


# Inside a negated list, an uncertainty cue only claims its own item: "no effusion, possible atelectasis" but not
# "no suspicious opacity, effusion or pneumothorax"; "no opacity to suggest pneumonia" stays a negation.
_ITEM_BREAK_RE = re.compile(r"[,;]|\b(?:or|and|nor)\b")
_TO_SUGGEST_RE = re.compile(r"\bto (?:suggest|indicate|explain)\w*$")


def _uncertain_item(left: str, after: int) -> bool:
    """Whether an uncertainty cue after position ``after`` of ``left`` governs the mention that ``left`` leads to."""
    cues = list(_UNCERTAIN_BEFORE.finditer(left, after))
    if not cues:
        return False
    cue = cues[-1]
    if cue.group(0).startswith("suspicious"):  # "no suspicious nodule": an adjective under the negation
        return False
    return not _ITEM_BREAK_RE.search(left, cue.end()) and not _TO_SUGGEST_RE.search(left, 0, cue.end())


def classify(
    observation: str, sentence: str, start: int, end: int, masked: str | None = None
) -> tuple[int | None, str]:
    """Label of the mention ``sentence[start:end]`` of ``observation`` and the name of the rule that decided it.

    The label is None when the phrase turns out not to be a mention (an anatomical word with no finding).
    ``masked`` is the sentence with its pseudo-negations blanked out, when the caller has it already.
    """
    if masked is None:
        masked = _mask_pseudo(sentence)
    left, right = _clause(masked, start, end)
    mention = sentence[start:end]

    # 1. Uncertainty that wins over negation.
    if _last_before(_PRE_NEG_UNCERTAIN_BEFORE, left, _NEGATION_WINDOW_WORDS) or _first_after(
        _PRE_NEG_UNCERTAIN_AFTER, right, _POST_WINDOW_WORDS
    ):
        return UNCERTAIN, "pre-negation uncertainty"

    # 2. Negation, unless an uncertainty cue sits between the negation cue and the mention ("no X, possible Y").
    negation = _last_before(_NEGATION_BEFORE, left, _NEGATION_WINDOW_WORDS) or _last_before(
        _NORMAL_BEFORE, left, _NORMAL_WINDOW_WORDS
    )
    if negation is not None and not _uncertain_item(left, negation.end()):
        return NEGATIVE, f"negation '{negation.group(0)}'"
    after = _first_after(_NEGATION_AFTER, right, _POST_NEGATION_WINDOW_WORDS)
    if after is not None:
        return NEGATIVE, f"negation '{after.group(0).strip()}'"

    # 3. Uncertainty.
    always = _ALWAYS_UNCERTAIN.get(observation)
    if always is not None and always.search(mention):
        return UNCERTAIN, "uncertain phrase"
    cue = _last_before(_UNCERTAIN_BEFORE, left, _UNCERTAIN_WINDOW_WORDS) or _first_after(
        _UNCERTAIN_AFTER, right, _POST_WINDOW_WORDS, comma_ends=True
    )
    if cue is not None:
        return UNCERTAIN, f"uncertainty '{cue.group(0).strip()}'"
    if _OR_AFTER_RE.search(right) or _OR_BEFORE_RE.search(left):
        return UNCERTAIN, "alternatives 'or'"
    anatomy = observation in ("Cardiomegaly", "Enlarged Cardiomediastinum") and _ANATOMY_RE.fullmatch(mention)
    if anatomy and not (
        _ENLARGED_RE.search(mention)  # "mediastinal widening"
        or _last_before(_ENLARGED_RE, _PHRASE_BREAK_RE.split(left)[-1], _ENLARGED_WINDOW_WORDS)
        or _first_after(_ENLARGED_RE, right, _ENLARGED_WINDOW_WORDS, comma_ends=True)
    ):
        if _STABLE_RE.search(left) or _first_after(_STABLE_RE, right, _POST_WINDOW_WORDS):
            return UNCERTAIN, "stable contour"
        return None, "anatomy only"
    return POSITIVE, "positive"


def _overlaps(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(start < e and end > s for s, e in spans)


def find_mentions(text: str) -> list[Mention]:
    """Every mention in ``text`` with its label, sentence by sentence."""
    mentions: list[Mention] = []
    for sentence in split_sentences(text):
        if not _ANY_MENTION_RE.search(sentence):
            continue
        masked = _mask_pseudo(sentence)
        for observation, pattern in _MENTION_RES.items():
            matches = list(pattern.finditer(sentence))
            if not matches:
                continue
            unmention = _UNMENTION_RES.get(observation)
            blocked = [m.span() for m in unmention.finditer(sentence)] if unmention else []
            for m in matches:
                if blocked and _overlaps(blocked, *m.span()):
                    continue
                label, rule = classify(observation, sentence, m.start(), m.end(), masked)
                if label is None:
                    continue
                mentions.append(Mention(observation, m.group(0), sentence, m.start(), m.end(), label, rule))
    return mentions


def aggregate(mentions: list[Mention]) -> dict[str, int | None]:
    """Report-level labels from mention labels (CheXpert's aggregation, see module docstring)."""
    found: dict[str, set[int]] = {}
    no_finding = True
    for mention in mentions:
        if mention.observation != "Support Devices" and mention.label in (POSITIVE, UNCERTAIN):
            no_finding = False
        if mention.observation == "No Finding":
            continue
        found.setdefault(mention.observation, set()).add(mention.label)
        # CheXpert: heart failure raises the question of an enlarged heart.
        if mention.label != NEGATIVE and _HEART_FAILURE_RE.fullmatch(mention.text):
            found.setdefault("Cardiomegaly", set()).add(UNCERTAIN)
    labels: dict[str, int | None] = {}
    for name in OBSERVATIONS:
        if name == "No Finding":
            labels[name] = POSITIVE if no_finding else None
            continue
        values = found.get(name)
        if not values:
            labels[name] = None
        elif POSITIVE in values:
            labels[name] = POSITIVE
        elif UNCERTAIN in values:
            labels[name] = UNCERTAIN
        else:
            labels[name] = NEGATIVE
    return labels


def label_report(text: str) -> dict[str, int | None]:
    """The 14 CheXpert labels of one report: 1 positive, 0 negative, -1 uncertain, None not mentioned.

    A blank report says nothing, so every label, No Finding included, is None (CheXpert would call it No Finding).
    """
    if not isinstance(text, str):
        raise TypeError(f"report text must be a string, got {type(text).__name__}")
    if not text.strip():
        return dict.fromkeys(OBSERVATIONS)
    return aggregate(find_mentions(text))


def label_reports(texts: list[str]) -> list[dict[str, int | None]]:
    """``label_report`` for each text, in order."""
    return [label_report(text) for text in texts]
