"""Agreement of the labeler with an independent label source: the manual MeSH codes of the Open-I (Indiana University)
chest X-ray reports, and optionally CheXbert labels of the same reports.

Open-I's ``indiana_reports.csv`` (Demner-Fushman et al., JAMIA 2016) has, per report, NLM indexers' MeSH-based codes
such as ``Cardiomegaly/mild;Pleural Effusion/left/small`` or ``normal``. A code names a finding that IS present, so
only positives can be compared: per observation, the precision and recall of the labeler's positives against the
codes. The mapping from codes to observations is ``MESH_RULES``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from deepmedix.errors import DataError
from deepmedix.labeler.rules import OBSERVATIONS, POSITIVE, UNCERTAIN, label_reports

# (code heading, qualifiers of which one must be present (empty: any), observation). A code such as
# "Cicatrix/pleura/right" has the heading "Cicatrix" and the qualifiers "pleura", "right".
MESH_RULES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Cardiomegaly", (), "Cardiomegaly"),
    ("Cardiac Shadow", ("enlarged",), "Cardiomegaly"),
    ("Mediastinum", ("enlarged", "prominent", "widened"), "Enlarged Cardiomediastinum"),
    ("Opacity", (), "Lung Opacity"),
    ("Airspace Disease", (), "Lung Opacity"),
    ("Infiltrate", (), "Lung Opacity"),
    # CheXpert counts scarring and interstitial markings as lung opacity, pleural scarring as "Pleural Other".
    ("Cicatrix", ("lung",), "Lung Opacity"),
    ("Markings", ("interstitial",), "Lung Opacity"),
    ("Lung Diseases, Interstitial", (), "Lung Opacity"),
    ("Nodule", (), "Lung Lesion"),
    ("Mass", (), "Lung Lesion"),
    ("Pulmonary Edema", (), "Edema"),
    ("Consolidation", (), "Consolidation"),
    ("Pneumonia", (), "Pneumonia"),
    ("Pulmonary Atelectasis", (), "Atelectasis"),
    ("Pneumothorax", (), "Pneumothorax"),
    ("Hydropneumothorax", (), "Pneumothorax"),
    ("Hemopneumothorax", (), "Pneumothorax"),
    ("Pleural Effusion", (), "Pleural Effusion"),
    ("Thickening", ("pleura",), "Pleural Other"),
    ("Cicatrix", ("pleura",), "Pleural Other"),
    ("Pulmonary Fibrosis", (), "Pleural Other"),
    ("Fractures, Bone", (), "Fracture"),
    ("Catheters, Indwelling", (), "Support Devices"),
    ("Medical Device", (), "Support Devices"),
    ("Implanted Medical Device", (), "Support Devices"),
    ("Tube, Inserted", (), "Support Devices"),
    ("Stents", (), "Support Devices"),
    ("Surgical Instruments", (), "Support Devices"),
    ("normal", (), "No Finding"),
)
UNCODED = "No Indexing"


@dataclass(frozen=True)
class OpenIReport:
    uid: str
    text: str
    positives: frozenset[str]


@dataclass(frozen=True)
class Agreement:
    """Positives of one observation: gold (codes), predicted (labeler) and their overlap."""

    observation: str
    gold: int
    predicted: int
    true_positive: int
    precision: float | None
    recall: float | None


def mesh_observations(mesh: str) -> frozenset[str]:
    """Observations present according to one report's MeSH codes (``;``-separated, qualifiers after ``/``)."""
    found: set[str] = set()
    for code in mesh.split(";"):
        heading, *qualifiers = [part.strip() for part in code.split("/")]
        for rule_heading, required, observation in MESH_RULES:
            if heading == rule_heading and (not required or any(q in qualifiers for q in required)):
                found.add(observation)
    return frozenset(found)


def load_openi_reports(csv_path: str | Path) -> list[OpenIReport]:
    """Coded Open-I reports (findings and impression joined) from ``indiana_reports.csv``; uncoded ones are left out."""
    csv_path = Path(csv_path)
    reports: list[OpenIReport] = []
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"uid", "MeSH", "findings", "impression"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{csv_path}: missing column(s) {sorted(missing)}")
        for row in reader:
            mesh = (row["MeSH"] or "").strip()
            if not mesh or mesh == UNCODED:
                continue
            text = " ".join(part.strip() for part in (row["findings"] or "", row["impression"] or "") if part.strip())
            if not text:
                continue
            reports.append(OpenIReport(row["uid"], text, mesh_observations(mesh)))
    return reports


def positive_agreement(
    gold: Sequence[frozenset[str]],
    predicted: Sequence[dict[str, int | None]],
    count_uncertain: bool = False,
) -> list[Agreement]:
    """Per-observation precision / recall of predicted positives against gold positives (None when undefined)."""
    accepted = {POSITIVE, UNCERTAIN} if count_uncertain else {POSITIVE}
    rows: list[Agreement] = []
    for name in OBSERVATIONS:
        n_gold = n_pred = n_tp = 0
        for gold_set, labels in zip(gold, predicted, strict=True):
            is_gold = name in gold_set
            is_pred = labels.get(name) in accepted
            n_gold += is_gold
            n_pred += is_pred
            n_tp += is_gold and is_pred
        rows.append(
            Agreement(
                name,
                n_gold,
                n_pred,
                n_tp,
                n_tp / n_pred if n_pred else None,
                n_tp / n_gold if n_gold else None,
            )
        )
    return rows


def openi_agreement(
    csv_path: str | Path,
    count_uncertain: bool = False,
    labeler: Callable[[list[str]], list[dict[str, int | None]]] = label_reports,
) -> tuple[list[OpenIReport], list[dict[str, int | None]], list[Agreement]]:
    """Label every coded Open-I report with ``labeler`` and compare its positives with the MeSH codes."""
    reports = load_openi_reports(csv_path)
    labels = labeler([r.text for r in reports])
    return reports, labels, positive_agreement([r.positives for r in reports], labels, count_uncertain)


def agreement_table(rows: Sequence[Agreement]) -> str:
    """A Markdown table of ``rows``."""
    lines = ["| observation | coded | labeled positive | both | precision | recall |", "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        p = "–" if row.precision is None else f"{row.precision:.2f}"
        r = "–" if row.recall is None else f"{row.recall:.2f}"
        lines.append(f"| {row.observation} | {row.gold} | {row.predicted} | {row.true_positive} | {p} | {r} |")
    return "\n".join(lines)


def agreement_dicts(rows: Sequence[Agreement]) -> list[dict[str, object]]:
    return [asdict(row) for row in rows]
