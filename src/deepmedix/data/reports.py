"""FINDINGS / IMPRESSION from free-text radiology reports, by the rules of MIMIC-CXR's own section parser.

MIT-LCP/mimic-cxr (``txt/section_parser.py``, used by ``create_section_files.py``) splits a report at capitalised
headers followed by a colon at the start of a line, normalises the header names (typos, synonyms such as
CONCLUSION → impression, view descriptions such as "PA AND LATERAL VIEWS OF THE CHEST" → findings), drops empty
findings/impression sections and keeps the *last* section of each name. A report with neither FINDINGS nor
IMPRESSION gets its parser's fallback: the last section is cut at its first blank line and the rest becomes a
``last_paragraph`` section (its ``create_section_files.py`` uses that as the report's conclusion). The same rules are
applied here (written afresh: that parser is not packaged on PyPI). Not applied: its per-study hand-made rules
(custom section names and character ranges for a few dozen MIMIC-CXR studies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A header: start of a line, optional indentation, capitals (with spaces and a few punctuation marks), a colon.
_HEADER = re.compile(r"(?:^|\n)[ \t]*([A-Z][A-Z ()/,&-]*[A-Z)]):[ \t]*", re.MULTILINE)

# Header spellings seen in MIMIC-CXR → canonical names (the frequent ones and the known typos).
_SECTION_SYNONYMS: dict[str, str] = {
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "findings and impression": "impression",
    "findings/impression": "impression",
    "findings/ impression": "impression",
    "impresson": "impression",
    "imprression": "impression",
    "imoression": "impression",
    "impressoin": "impression",
    "imprssion": "impression",
    "impresion": "impression",
    "imperssion": "impression",
    "mpression": "impression",
    "impession": "impression",
    "ndication": "impression",
    "findings": "findings",
    "finding": "findings",
    "findins": "findings",
    "findindgs": "findings",
    "findgings": "findings",
    "findngs": "findings",
    "findnings": "findings",
    "finidngs": "findings",
    "reference findings": "findings",
    "chest, two views": "findings",
    "comparison": "comparison",
    "comparisons": "comparison",
    "reference exam": "comparison",
    "comparison exam": "comparison",
    "comparison film": "comparison",
    "comparision": "comparison",
    "comparsion": "comparison",
    "comparrison": "comparison",
    "comparisions": "comparison",
    "indication": "indication",
    "reason for examination": "indication",
    "reason for exam": "indication",
    "clinical indication": "indication",
    "idication": "indication",
    "history": "history",
    "clinical history": "history",
    "clinical information": "history",
    "patient history": "history",
    "pfi": "history",
    "examination": "examination",
    "exam": "examination",
    "type of examination": "examination",
    "technique": "technique",
    "notification": "notification",
    "addendum": "addendum",
    "recommendation(s)": "recommendations",
    "recommendation": "recommendations",
    "recommendations": "recommendations",
    "wet read": "wet read",
    "wetread": "wet read",
    "date": "date",
    "comment": "comment",
}
_MAIN_SECTIONS = ("impression", "findings", "history", "comparison", "addendum")
# A header that describes the views taken is the findings section in MIMIC-CXR's convention.
_VIEW_HEADER = re.compile(
    r"chest|portable|pa and lateral|lateral and pa|ap and lateral|lateral and ap|frontal and|two views|frontal view|"
    r"pa view|ap view|one view|lateral view|bone window|frontal upright|frontal semi-upright|ribs|pa and lat"
)


def normalize_section_name(name: str) -> str:
    s = " ".join(name.lower().split())
    if s in _SECTION_SYNONYMS:
        return _SECTION_SYNONYMS[s]
    for main in _MAIN_SECTIONS:
        if main in s:
            return main
    if _VIEW_HEADER.search(s):
        return "findings"
    return s


# A blank line (the official parser looks for "\n \n", MIMIC-CXR's blank lines holding one space).
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


@dataclass
class ReportSections:
    findings: str | None
    impression: str | None
    sections: list[tuple[str, str]]  # (normalised name, text) in report order, including the preamble
    last_paragraph: str | None = None  # only for a report with neither findings nor impression


def split_sections(text: str) -> list[tuple[str, str]]:
    """``[(name, text), …]`` in order; text before the first header is the ``preamble``."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    matches = list(_HEADER.finditer(text))
    if not matches:
        return [("full report", text)]
    sections = [("preamble", text[: matches[0].start()])]
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        sections.append((normalize_section_name(m.group(1)), text[m.end() : end]))
    return sections


def extract_sections(text: str) -> ReportSections:
    """FINDINGS and IMPRESSION of a report (``None`` when the report has no such section, or it is empty).

    With neither, the last section's text after its first blank line is the ``last_paragraph`` (``None`` if the last
    section has no blank line inside it), as the official parser does.
    """
    sections = [
        (n, t) for n, t in split_sections(text) if not (n in ("findings", "impression") and not t.strip())
    ]  # empty duplicates are dropped
    names = {n for n, _ in sections}
    if "findings" not in names and "impression" not in names and sections:
        name, body = sections[-1]
        parts = _BLANK_LINE.split(body.strip("\n"), maxsplit=1)
        if len(parts) == 2 and parts[1].strip():
            sections[-1] = (name, parts[0])
            sections.append(("last_paragraph", parts[1]))

    def last(name: str) -> str | None:
        for n, t in reversed(sections):
            if n == name:
                cleaned = " ".join(t.split())
                return cleaned or None
        return None

    return ReportSections(
        findings=last("findings"),
        impression=last("impression"),
        sections=sections,
        last_paragraph=last("last_paragraph"),
    )
