"""Anatomical regions of a frontal CXR as fractions of the image, for the template teacher.

The image's left is the patient's right (radiological convention). These are rough, population-average zones —
good enough to write a well-formed, plausibly placed citation; not a segmentation.
"""

from __future__ import annotations

# name -> (x_min, y_min, x_max, y_max) as fractions of width and height
REGIONS: dict[str, tuple[float, float, float, float]] = {
    "right lung": (0.10, 0.12, 0.48, 0.82),
    "left lung": (0.52, 0.12, 0.90, 0.82),
    "right upper zone": (0.12, 0.12, 0.47, 0.38),
    "left upper zone": (0.53, 0.12, 0.88, 0.38),
    "right lower zone": (0.10, 0.55, 0.47, 0.82),
    "left lower zone": (0.53, 0.55, 0.90, 0.82),
    "right costophrenic angle": (0.08, 0.68, 0.30, 0.88),
    "left costophrenic angle": (0.70, 0.68, 0.92, 0.88),
    "cardiac silhouette": (0.36, 0.42, 0.74, 0.80),
    "mediastinum": (0.40, 0.08, 0.60, 0.55),
    "right apex": (0.14, 0.06, 0.42, 0.24),
    "left apex": (0.58, 0.06, 0.86, 0.24),
    "hila": (0.34, 0.32, 0.66, 0.55),
    "bony thorax": (0.04, 0.05, 0.96, 0.90),
}

# CheXpert observation -> the regions a reader checks for it
OBSERVATION_REGIONS: dict[str, tuple[str, ...]] = {
    "Enlarged Cardiomediastinum": ("mediastinum",),
    "Cardiomegaly": ("cardiac silhouette",),
    "Lung Opacity": ("right lower zone", "left lower zone"),
    "Lung Lesion": ("right lung", "left lung"),
    "Edema": ("hila", "right lower zone", "left lower zone"),
    "Consolidation": ("right lower zone", "left lower zone"),
    "Pneumonia": ("right lower zone", "left lower zone"),
    "Atelectasis": ("right lower zone", "left lower zone"),
    "Pneumothorax": ("right apex", "left apex"),
    "Pleural Effusion": ("right costophrenic angle", "left costophrenic angle"),
    "Pleural Other": ("right lung", "left lung"),
    "Fracture": ("bony thorax",),
    "Support Devices": ("mediastinum",),
}

# keywords of a question -> region
KEYWORD_REGIONS: tuple[tuple[str, str], ...] = (
    ("heart", "cardiac silhouette"),
    ("cardiac", "cardiac silhouette"),
    ("mediastin", "mediastinum"),
    ("costophrenic", "right costophrenic angle"),
    ("effusion", "right costophrenic angle"),
    ("apex", "right apex"),
    ("pneumothorax", "right apex"),
    ("rib", "bony thorax"),
    ("bone", "bony thorax"),
    ("fracture", "bony thorax"),
    ("hil", "hila"),
    ("right", "right lung"),
    ("left", "left lung"),
)


def region_box(name: str, width: float, height: float) -> tuple[int, int, int, int]:
    """The region's box in a frame of ``width`` × ``height``, rounded to whole pixels inside the frame."""
    fx0, fy0, fx1, fy1 = REGIONS[name]
    return (int(fx0 * width), int(fy0 * height), int(fx1 * width), int(fy1 * height))
