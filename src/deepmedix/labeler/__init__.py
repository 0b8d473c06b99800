"""An offline, rule-based labeler of the 14 CheXpert observations in free-text chest X-ray reports.

It follows the CheXpert labeler's conventions (1 positive, 0 negative, -1 uncertain, None not mentioned; No Finding)
with regular expressions instead of a parser: fast, dependency-free, and reported as "F1-CheXpert (rules)". It is
not CheXbert. ``label_reports(texts)`` is the entry point; ``find_mentions(text)`` explains a label.
"""

from deepmedix.labeler.rules import (
    NEGATIVE,
    OBSERVATIONS,
    POSITIVE,
    UNCERTAIN,
    Mention,
    find_mentions,
    label_report,
    label_reports,
)

# What scores computed from these labels are called (distinct from F1-CheXbert).
METRIC_NAME = "F1-CheXpert (rules)"

__all__ = [
    "METRIC_NAME",
    "NEGATIVE",
    "OBSERVATIONS",
    "POSITIVE",
    "UNCERTAIN",
    "Mention",
    "find_mentions",
    "label_report",
    "label_reports",
]
