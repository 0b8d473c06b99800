"""Mention phrases of the 14 CheXpert observations, as regular-expression fragments over lower-cased text.

The base lists come from the CheXpert labeler (github.com/stanfordmlgroup/chexpert-labeler, ``phrases/mention``,
``phrases/unmention`` and ``mention_phrases``; MIT licence, Copyright (c) 2019 Stanford Machine Learning Group;
Irvin et al., "CheXpert: A Large Chest Radiograph Dataset with Uncertainty Labels and Expert Comparison", AAAI 2019).
There they are matched as raw substrings; here every fragment starts at a word boundary, and a fragment that is a
word stem says so with ``\\w*`` (e.g. ``atelecta\\w*``), so that "plate" no longer fires on "platelike atelectasis"
and "mass" not on "massive". Phrases marked ``# added`` are not in the CheXpert lists: common radiology phrasings
(devices, blunting, hydropneumothorax, ground glass) checked against the Open-I reports (docs/labeler.md).
"""

from __future__ import annotations

# Observation name -> mention fragments. Order here does not matter; OBSERVATIONS fixes the output order.
MENTIONS: dict[str, list[str]] = {
    "Enlarged Cardiomediastinum": [
        r"mediastinum",
        r"cardiomediastinum",
        r"cardiomediastinal (?:silhouette|contours?|structures|borders?|shadow|size|width)",  # added: CheXpert matched it as a substring of "mediastinal silhouette"
        r"contours?",
        r"mediastinal (?:configuration|silhouette|contours?|widening|width|shadow)",
        r"pericardial silhouette",
        r"cardiac silhouette and vascularity",
        r"widen(?:ed|ing) (?:of the )?(?:superior )?mediastin\w*",  # added
    ],
    "Cardiomegaly": [
        r"cardiomegaly",
        r"the heart",
        r"heart(?! failure)",  # added: "Heart is enlarged" / "Heart size normal" without the article
        r"heart size",
        r"cardiac enlargement",
        r"cardiac size",
        r"cardiac shadow",
        r"cardiac contours?",
        r"cardiac silhouette",
        r"enlarged heart",
        r"enlarged cardiac silhouette",
    ],
    "Lung Opacity": [
        r"opaci\w*",
        r"decreased translucency",
        r"increased density",
        r"air[- ]?space (?:disease|process)",
        r"infiltrat\w*",
        r"interstitial marking\w*",
        r"interstitial pattern\w*",
        r"interstitial lung\w*",
        r"reticular pattern\w*",
        r"reticular marking\w*",
        r"reticulation\w*",
        r"parenchymal scarring",
        r"peribronchial thickening",
        r"wall thickening",
        r"scar\w*",
        r"ground[- ]glass",  # added
    ],
    "Lung Lesion": [
        r"mass(?:es)?",
        r"nodular densit\w*",
        r"nodular opaci\w*",
        r"nodules?",
        r"nodular\w*",
        r"lump\w*",
        r"cavitary lesions?",
        r"carcinoma\w*",
        r"neoplas\w*",
        r"tumou?rs?",
    ],
    "Edema": [
        r"edema",
        r"oedema",  # added
        r"heart failure",
        r"chf",
        r"vascular congestion",
        r"pulmonary congestion",
        r"indistinctness",
        r"vascular prominence",
    ],
    "Consolidation": [r"consolidat\w*"],
    "Pneumonia": [r"pneumoni\w*", r"infection", r"infectious process", r"infectious"],
    "Atelectasis": [r"atelecta\w*", r"collapse\w*"],
    "Pneumothorax": [r"(?:hydro)?pneumothora\w*"],
    "Pleural Effusion": [
        r"pleural fluid",
        r"effusions?",
        r"blunt(?:ing|ed)? (?:of )?(?:the )?(?:(?:left|right|bilateral|posterior|lateral) )*costophrenic",  # added
        r"costophrenic (?:angles? |recess(?:es)? |sulcus )?(?:is |are )?blunt\w*",  # added
    ],
    "Pleural Other": [
        r"pleural thickening",
        r"fibrosis",
        r"fibrotic",  # added
        r"fibrothorax",
        r"pleural scar\w*",
        r"pleural parenchymal scar\w*",
        r"pleuro-?parenchymal scar\w*",
        r"pleuro-?pericardial scar\w*",
    ],
    "Fracture": [r"fracture\w*", r"fx"],
    "Support Devices": [
        r"pacer\w*",
        r"lines?",
        r"picc",
        r"tubes?",
        r"valves?",
        r"catheters?",
        r"pacemakers?",
        r"hardware",
        r"arthroplast\w*",
        r"markers?",
        r"icd",
        r"defib\w*",
        r"devices?",
        r"drains?",
        r"plates?",
        r"screws?",
        r"cannula\w*",
        r"apparatus",
        r"coils?",
        r"support",
        r"equipment",
        r"mediport",
        r"port-?a-?cath",  # added
        r"stents?",  # added
        r"clips",  # added
        r"tip",  # added: "catheter tip projects over the SVC", often with the device name de-identified
        r"stimulators?",  # added
        r"prosthe\w*",  # added
        r"anchors?",  # added
        r"tracheostomy",  # added
        r"(?:sternotomy|sternal|cerclage) wires?",  # added
        r"leads?",  # added
        r"ett",  # added
        r"ngt",  # added
        r"ogt",  # added
        r"aicd",  # added
        r"lvad",  # added
    ],
    # Findings outside the 13 pathologies: a positive or uncertain one means the study is not "No Finding".
    "No Finding": [
        r"emphysema\w*",
        r"blunt\w*",
        r"density",
        r"elevation",
        r"eventration",
        r"scoliosis",
        r"degenera\w*",
        r"calcifi\w*",
        r"hyperinflation",
        r"bronchospasm",
        r"asthma",
        r"hernia\w*",
        r"copd",
        r"interstitial markings",
        r"plaques?",
        r"osteophytosis",
        r"aortic disease",
        r"bronchiolitis",
        r"airways disease",
        r"thickening",
        r"cephalization",
        r"aspiration",
        r"bullae",
        r"hyperinflat\w*",
        r"contusion\w*",
        r"atherosclero\w*",
        r"osteopenia",
        r"metasta\w*",
        r"granuloma\w*",
        r"pneumomediastinum",
        r"pneumoperitoneum",
        r"osteodystrophy",
        r"cuffing",
        r"irregular lucency",
        r"inflam\w*",
        r"fissure",
        r"hypertension",
        r"prominen\w*",
        r"kyphosis",
        r"defib\w*",
        r"hyperexpan\w*",
        r"bullet",
        r"reticula\w*",
        r"thoracentesis",
        r"bronchitis",
        r"volume loss",
        r"deformity",
        r"hemorrhage",
        r"hematoma",
        r"radiopaque",
        r"aerophagia",
        r"arthropathy",
        r"tracheostomy",
    ],
}

# Phrases that contain a mention but are not one (an overlapping match is dropped).
_POSITIONAL = [
    f"{p}{side}"
    for p in ("over the", "overlying the", "overly the", "in the")
    for side in ("", " superior", " left", " right")
]
UNMENTIONS: dict[str, list[str]] = {
    "Cardiomegaly": [rf"{p} (?:heart|cardiac (?:shadow|contours?|silhouette))" for p in _POSITIONAL],
    "Enlarged Cardiomediastinum": [
        *(rf"{p} (?:mediastinum|cardiomediastinum|contours?)" for p in _POSITIONAL),
        # contours of other structures
        r"(?:hilar|hila|aortic|aorta|ventricular|diaphragmatic|diaphragm|hemidiaphragm|pleural|rib|bony|osseous) (?:\w+ )?contours?",
        r"contours? of the (?:\w+ )?(?:aorta|aortic \w+|hila|hilum|diaphragms?|hemidiaphragms?|ventricle)",
    ],
    "Lung Lesion": [r"calcified nodul\w*", r"massive", r"massengale", r"nodular (?:calcification|granuloma)\w*"],
    "Lung Opacity": [r"pleural scar\w*"],
    # a broken device is not a broken bone
    "Fracture": [
        r"(?:screws?|leads?|wires?|hardware|plates?|xxxx) (?:is |are |appears? )?fractured",
        r"fracture[ds]? (?:of )?(?:the )?(?:\w+ ){0,3}(?:screws?|leads?|wires?|hardware|plates?)",
        r"fractured (?:\w+ ){0,2}(?:screws?|leads?|wires?|hardware|plates?)",
    ],
    "Pleural Effusion": [r"pericardial effusions?"],
    "Support Devices": [
        r"kerley (?:a |b |c )?lines?",  # a sign of edema, not a device
        r"septal lines?",
        r"[abc]-lines?",
        r"lung lines?",
        r"(?:mid|para|pleural|paratracheal|paraspinal|azygoesophageal|fissure|skin|sutures?) ?lines?",
        r"lines? of (?:the )?(?:pleura|fissure)",
        r"lead to",
        r"leads? (?:to|of)\b",
        r"tip of (?:the )?(?:lingula|lung|scapula|clavicle|\w+ lobe)",
        r"lung tip",
    ],
    "Pneumonia": [
        r"(?:prior|previous|old|remote|healed|chronic|past) (?:\w+ ){0,2}(?:infection|pneumonia)\w*",
        r"granulomatous (?:infection|disease)",
        r"tubercul\w* (?:infection|pneumonia)",
    ],
}
