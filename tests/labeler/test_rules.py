"""The rule-based CheXpert labeler: conventions, mentions, negation / uncertainty scopes, aggregation."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmedix.labeler import OBSERVATIONS, find_mentions, label_report, label_reports

CHEXPERT_ORDER = [
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
]
PATHOLOGIES = [name for name in CHEXPERT_ORDER if name not in ("Support Devices", "No Finding")]


def test_observations_are_the_chexpert_fourteen_in_order() -> None:
    assert list(OBSERVATIONS) == CHEXPERT_ORDER


def test_gold_labelled_chexpert_reports_match_exactly(shared_data) -> None:
    path = shared_data / "curated" / "text" / "chexpert_labeler_samples.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert len(records) == 4
    for record in records:
        gold = {k: None if v is None else int(v) for k, v in record["chexpert_labels"].items()}
        got = label_report(record["report"])
        assert list(got) == CHEXPERT_ORDER
        assert got == gold, record["id"]


def _labels(text: str, *names: str) -> tuple[int | None, ...]:
    labels = label_report(text)
    return tuple(labels[name] for name in names)


@pytest.mark.parametrize(
    "text",
    [
        "No effusion, consolidation or pneumothorax.",
        "There is no pleural effusion, pneumothorax, or focal consolidation.",
        "Without effusion, consolidation, or pneumothorax.",
        "The lungs are free of consolidation, effusion and pneumothorax.",
        "Negative for effusion, consolidation or pneumothorax.",
        "No evidence of pleural effusion, consolidation, or pneumothorax.",
    ],
)
def test_negation_scope_runs_across_a_list(text: str) -> None:
    assert _labels(text, "Pleural Effusion", "Consolidation", "Pneumothorax") == (0, 0, 0)


@pytest.mark.parametrize(
    "text",
    [
        "Pneumothorax has resolved.",
        "The previously seen pneumothorax is no longer visualized.",
        "Pneumothorax is not seen.",
        "Resolved right pneumothorax.",
        "Interval resolution of the pneumothorax.",
    ],
)
def test_trailing_and_resolution_negations(text: str) -> None:
    assert label_report(text)["Pneumothorax"] == 0


@pytest.mark.parametrize(
    "text",
    [
        "Possible left lower lobe pneumonia.",
        "Findings may represent pneumonia.",
        "Cannot exclude pneumonia.",
        "Pneumonia cannot be excluded.",
        "Opacity concerning for pneumonia.",
        "Opacity suggestive of pneumonia.",
        "Likely pneumonia.",
        "Pneumonia is suspected.",
        "Atelectasis versus pneumonia.",
        "Atelectasis or pneumonia.",
        "Differential diagnosis includes pneumonia.",
        "Questionable pneumonia.",
    ],
)
def test_uncertainty_cues(text: str) -> None:
    assert label_report(text)["Pneumonia"] == -1


def test_a_guess_about_a_finding_leaves_the_finding_positive() -> None:
    # The opacity is seen; only what it represents is uncertain (as in CheXpert).
    labels = label_report("Left basilar opacity may reflect atelectasis.")
    assert (labels["Lung Opacity"], labels["Atelectasis"]) == (1, -1)
    assert label_report("A small effusion may be present.")["Pleural Effusion"] == -1
    labels = label_report("Retrocardiac opacity likely reflects atelectasis.")
    assert (labels["Lung Opacity"], labels["Atelectasis"]) == (1, -1)
    assert label_report("Bibasilar opacities, atelectasis likely.")["Atelectasis"] == -1
    assert label_report("Mediastinal widening is concerning for aortic injury.")["Enlarged Cardiomediastinum"] == 1


def test_uncertainty_that_overrides_negation() -> None:
    # CheXpert's pre-negation uncertainty: these would otherwise read as negations.
    assert label_report("No new consolidation.")["Consolidation"] == -1
    assert label_report("Pneumothorax is not excluded.")["Pneumothorax"] == -1
    assert label_report("We cannot rule out a small effusion.")["Pleural Effusion"] == -1


def test_pseudo_negation_does_not_negate() -> None:
    assert label_report("No change in the moderate right pleural effusion.")["Pleural Effusion"] == 1
    assert label_report("Cardiomegaly, not significantly changed.")["Cardiomegaly"] == 1


def test_negation_stops_at_a_clause_boundary() -> None:
    text = "No pneumothorax, but there is a small left pleural effusion."
    assert _labels(text, "Pneumothorax", "Pleural Effusion") == (0, 1)
    text = "No pneumothorax is seen, the heart is enlarged."
    assert _labels(text, "Pneumothorax", "Cardiomegaly") == (0, 1)
    text = "No effusion; atelectasis at the left base."
    assert _labels(text, "Pleural Effusion", "Atelectasis") == (0, 1)
    # An uncertainty cue after the negation starts a new statement, but only for its own list item.
    assert _labels("No effusion, possible atelectasis.", "Pleural Effusion", "Atelectasis") == (0, -1)
    text = "No focal consolidation, possible small opacity, pleural effusion, or pneumothorax."
    assert _labels(text, "Lung Opacity", "Pleural Effusion", "Pneumothorax") == (-1, 0, 0)
    text = "No focal consolidation, suspicious pulmonary opacity, pleural effusion, or pneumothorax."
    assert _labels(text, "Lung Opacity", "Pleural Effusion", "Pneumothorax") == (0, 0, 0)
    # CheXpert: "no X to suggest Y" negates Y.
    assert _labels("No focal airspace opacity to suggest pneumonia.", "Lung Opacity", "Pneumonia") == (0, 0)


def test_negation_does_not_leak_into_the_next_sentence() -> None:
    assert _labels("No pleural effusion. Left lower lobe consolidation.", "Pleural Effusion", "Consolidation") == (0, 1)


def test_heart_anatomy_needs_a_finding_word() -> None:
    assert label_report("The heart is enlarged.")["Cardiomegaly"] == 1
    assert label_report("Heart size is normal.")["Cardiomegaly"] == 0
    assert label_report("The heart is at the upper limits of normal in size.")["Cardiomegaly"] == 0
    assert label_report("Normal heart size and pulmonary vascularity.")["Cardiomegaly"] == 0
    # Naming the heart without saying anything about its size is not a mention.
    assert label_report("The heart and lungs have not changed in the interval.")["Cardiomegaly"] is None
    # A trailing "normal" does not reach back over "with": the cardiomegaly stays positive.
    assert label_report("Cardiomegaly with normal pulmonary vascularity.")["Cardiomegaly"] == 1
    # CheXpert: a stable silhouette is uncertain for enlargement; a stable enlarged one is positive.
    assert label_report("Stable cardiac silhouette.")["Cardiomegaly"] == -1
    assert label_report("Stable mild enlargement of the cardiac silhouette.")["Cardiomegaly"] == 1


def test_aggregation_precedence_positive_over_uncertain_over_negative() -> None:
    assert label_report("No effusion on the right. Small left effusion.")["Pleural Effusion"] == 1
    assert label_report("Possible small effusion. No large effusion.")["Pleural Effusion"] == -1
    assert label_report("Possible effusion on the left. Right effusion is present.")["Pleural Effusion"] == 1
    assert label_report("No effusion. No pleural fluid.")["Pleural Effusion"] == 0


def test_no_finding_rule() -> None:
    # Nothing positive or uncertain -> No Finding, even with negated findings.
    assert label_report("No acute cardiopulmonary process. No effusion.")["No Finding"] == 1
    # Support devices do not count against No Finding.
    labels = label_report("Right PICC line terminates in the SVC. Lungs are clear.")
    assert labels["Support Devices"] == 1 and labels["No Finding"] == 1
    # An uncertain pathology does.
    assert label_report("Possible small effusion.")["No Finding"] is None
    # So does a finding outside the 13 (CheXpert's no_finding phrases), without being a label itself.
    labels = label_report("Emphysema. Calcified granuloma in the right upper lobe.")
    assert labels["No Finding"] is None
    assert all(labels[name] is None for name in PATHOLOGIES)
    # No Finding is never 0.
    assert label_report("Large right pleural effusion.")["No Finding"] is None


def test_heart_failure_raises_uncertain_cardiomegaly() -> None:
    labels = label_report("Findings consistent with CHF.")
    assert labels["Edema"] == 1 and labels["Cardiomegaly"] == -1
    assert label_report("No evidence of CHF.")["Cardiomegaly"] is None


def test_congestion_is_uncertain_edema() -> None:
    assert label_report("Mild pulmonary vascular congestion.")["Edema"] == -1
    assert label_report("Moderate pulmonary edema.")["Edema"] == 1


def test_unmentions_and_word_boundaries() -> None:
    assert label_report("Small pericardial effusion.")["Pleural Effusion"] is None
    assert label_report("Platelike atelectasis at the left base.")["Support Devices"] is None
    assert label_report("Kerley B lines suggest interstitial edema.")["Support Devices"] is None
    assert label_report("Massive hiatal hernia.")["Lung Lesion"] is None
    assert label_report("Calcified nodule in the right upper lobe.")["Lung Lesion"] is None
    assert label_report("Dense retrocardiac opacity over the heart.")["Cardiomegaly"] is None
    assert label_report("The lateral most fixation screw is fractured.")["Fracture"] is None
    assert label_report("Prominent hilar contours.")["Enlarged Cardiomediastinum"] is None
    # The enlargement word must describe the structure, not a neighbour across a comma.
    labels = label_report("Heart size mildly enlarged, stable mediastinal contours.")
    assert labels["Cardiomegaly"] == 1 and labels["Enlarged Cardiomediastinum"] == -1


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Blunting of the left costophrenic angle.", "Pleural Effusion"),
        ("Collapse of the right upper lobe.", "Atelectasis"),
        ("Patchy infiltrate in the right lower lobe.", "Lung Opacity"),
        ("Bibasilar airspace disease.", "Lung Opacity"),
        ("Endotracheal tube terminates 4 cm above the carina.", "Support Devices"),
        ("Left chest wall pacemaker with leads in the right atrium and ventricle.", "Support Devices"),
        ("Nasogastric tube courses below the diaphragm.", "Support Devices"),
        ("Healing fracture of the left 6th rib.", "Fracture"),
        ("Small right apical pneumothorax.", "Pneumothorax"),
        ("Widened mediastinum.", "Enlarged Cardiomediastinum"),
        ("Right upper lobe mass.", "Lung Lesion"),
        ("Apical pleural thickening.", "Pleural Other"),
        ("Stable interstitial fibrotic changes.", "Pleural Other"),
    ],
)
def test_radiology_phrasings_are_mentions(text: str, name: str) -> None:
    expected = -1 if name == "Pleural Effusion" else 1  # blunting alone is uncertain for effusion
    assert label_report(text)[name] == expected


def test_find_mentions_explains_each_label() -> None:
    mentions = find_mentions("No pneumothorax. Possible pneumonia.")
    by_observation = {m.observation: m for m in mentions}
    assert by_observation["Pneumothorax"].label == 0 and "no" in by_observation["Pneumothorax"].rule
    assert by_observation["Pneumonia"].label == -1 and "possible" in by_observation["Pneumonia"].rule
    assert by_observation["Pneumonia"].text == "pneumonia"


def test_blank_report_says_nothing() -> None:
    assert label_report("   \n") == dict.fromkeys(CHEXPERT_ORDER)


def test_label_reports_keeps_order_and_rejects_non_text() -> None:
    texts = ["Large left pleural effusion.", "No effusion."]
    assert [labels["Pleural Effusion"] for labels in label_reports(texts)] == [1, 0]
    with pytest.raises(TypeError, match="string"):
        label_report(None)  # type: ignore[arg-type]


_VOCABULARY = """no not possible effusion pneumothorax heart enlarged normal the of or and , . ; cannot exclude
consolidation edema line tube stable without may atelectasis lungs clear xxxx 1. resolved"""
_WORDS = st.sampled_from(_VOCABULARY.split())


@settings(max_examples=200, deadline=None)
@given(st.lists(_WORDS, max_size=40).map(" ".join))
def test_any_text_gets_well_formed_labels(text: str) -> None:
    labels = label_report(text)
    assert list(labels) == CHEXPERT_ORDER
    assert all(value in (1, 0, -1, None) for value in labels.values())
    assert labels["No Finding"] in (1, None)
    if any(labels[name] in (1, -1) for name in PATHOLOGIES):
        assert labels["No Finding"] is None
