"""Label Studio interop: export the review set as tasks + a labelling config, import its JSON export back.

Formats (Label Studio docs, "Label Studio Task Format" and "Import pre-annotated data"; checked against Label
Studio 1.23.2, its API and its editor, by tests/annotation/test_labelstudio_real.py): a task is
``{"data": {...}, "predictions": [{"model_version", "result": [...]}]}``; a rectangle region is
``{"from_name", "to_name", "type": "rectanglelabels", "original_width", "original_height", "value": {"x", "y",
"width", "height", "rotation", "rectanglelabels": [...]}}`` with x/y/width/height in percent of the image; an
export holds ``annotations: [{"completed_by", "was_cancelled", "result": [{"from_name", "type": "choices",
"value": {"choices": [...]}}]}]``, where ``completed_by`` is the user's id in ``GET /api/projects/ID/export`` and
``{"id", "email", …}`` in an export snapshot made with ``annotations__completed_by: {only_id: false}``. Label Studio
stores any annotation result without checking it against the config: the import checks every choice.

Label Studio shows one layout per task to every annotator, so the left/right blinding here is drawn per sample
(from the review set's seed) and stored in the review set; the web app draws it per annotator and sample.

A Label Studio project hands each task to one annotator unless its ``maximum_annotations`` says otherwise, so the
export also writes the project settings (``POST /api/projects`` body) that let every annotator who must rate a
sample get its task.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any, NamedTuple
from xml.sax.saxutils import quoteattr

from deepmedix.annotation.store import ReviewStore, transaction
from deepmedix.errors import DataError, OptionError
from deepmedix.io import atomic_write_json, atomic_write_text, check_output, read_json

SIDES = ("left", "right")
YES_NO = {"yes": 1, "no": 0}
_FIELD = re.compile(
    r"^(?:(left|right)_step_(\d+)_(relevance|correctness)|(left|right)_(completeness)|"
    r"(grounded_preference|overall_preference))$"
)
LAYOUT_KEY = "labelstudio_left_model"
PROJECT_TITLE_MAX = 50  # Label Studio refuses longer project titles


class LabelStudioExport(NamedTuple):
    tasks: Path  # the tasks to import (JSON list)
    config: Path  # the labelling config (XML)
    project: Path  # the project settings, the labelling config included (JSON, a POST /api/projects body)


def _layout(store: ReviewStore) -> dict[str, int]:
    """sample → index of the model shown on the Left in Label Studio; drawn once, then stored."""
    meta = store.meta()
    if LAYOUT_KEY in meta:
        return {k: int(v) for k, v in meta[LAYOUT_KEY].items()}
    seed = meta.get("seed", 0)
    layout = {sid: random.Random(f"{seed}|labelstudio|{sid}").randrange(2) for sid in store.sample_ids()}
    with transaction(store.conn):
        store.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (LAYOUT_KEY, json.dumps(layout)))
    return layout


def labelling_config(max_steps: int) -> str:
    """The Label Studio labelling config: per-step Choices (fields left_step_N_relevance …), completeness per
    side, the two preferences, and the image with the steps' regions as labelled rectangles."""

    def choices(name: str, to: str, values: list[str], title: str) -> str:
        # Choices has no label attribute of its own: a small Header names the question above the buttons.
        opts = "".join(f'<Choice value="{v}"/>' for v in values)
        return (
            f'<Header size="6" value={quoteattr(title)}/>'
            f'<Choices name="{name}" toName="{to}" choice="single-radio" showInline="true">{opts}</Choices>'
        )

    labels = "".join(
        f'<Label value="{side.title()} {i}" background="{"#2a9df4" if side == "left" else "#f4a62a"}"/>'
        for side in SIDES
        for i in range(1, max_steps + 1)
    )
    parts = [
        "<View>",
        '<Header value="Question / task"/><Text name="question" value="$question"/>',
        '<Header value="Reference answer"/><Text name="reference" value="$reference"/>',
        '<Image name="image" value="$image" zoom="true"/>',
        f'<RectangleLabels name="regions" toName="image">{labels}</RectangleLabels>',
        '<View style="display: flex; gap: 1em;">',
    ]
    for side in SIDES:
        parts.append(f'<View style="flex: 1;"><Header value="{side.title()}"/>')
        for i in range(1, max_steps + 1):
            step = f"{side}_step_{i}"
            parts.append(f'<View><Text name="{step}" value="${step}"/>')
            parts.append(
                choices(f"{step}_relevance", step, ["Yes", "No"], "Relevance (relevant to the correct answer?)")
            )
            parts.append(
                choices(
                    f"{step}_correctness",
                    step,
                    ["Yes", "No"],
                    "Correctness (truly reflects the image, including the cited region?)",
                )
            )
            parts.append("</View>")
        parts.append(f'<Text name="{side}_answer" value="${side}_answer"/>')
        parts.append(
            choices(
                f"{side}_completeness",
                f"{side}_answer",
                ["Yes", "No"],
                "Completeness (are the steps sufficient to reach the correct answer?)",
            )
        )
        parts.append("</View>")
    parts.append("</View>")
    parts.append(
        choices(
            "grounded_preference",
            "image",
            ["Left", "Right"],
            "Grounded preference (better fine-grained, correct, relevant regional description)",
        )
    )
    parts.append(
        choices(
            "overall_preference",
            "image",
            ["Left", "Right"],
            "Overall preference (more professional, leads better to the correct answer)",
        )
    )
    parts.append("</View>")
    return "\n".join(parts) + "\n"


def _percent_box(box: list[float], w: int, h: int) -> dict[str, float]:
    # Label Studio regions must lie on the image; boxes past the edge are clipped here (the web app draws them whole).
    x0, x1 = sorted((min(max(box[0], 0), w), min(max(box[2], 0), w)))
    y0, y1 = sorted((min(max(box[1], 0), h), min(max(box[3], 0), h)))
    return {
        "x": 100 * x0 / w,
        "y": 100 * y0 / h,
        "width": 100 * (x1 - x0) / w,
        "height": 100 * (y1 - y0) / h,
        "rotation": 0,
    }


def raters_per_sample(store: ReviewStore) -> int:
    """How many annotators rate each sample: all of them, or one per group when groups split their samples."""
    if store.meta().get("within_group") == "split":
        return len(store.groups())
    return len(store.annotators())


def project_settings(review_name: str, config: str, raters: int) -> dict[str, Any]:
    return {
        "title": f"Reasoning review {review_name}"[:PROJECT_TITLE_MAX],
        "label_config": config,
        # Label Studio's default (1) hands each task to a single annotator: every rater must get it.
        "maximum_annotations": raters,
        # A skipped task counts as done for that annotator and leaves the sample unrated.
        "show_skip_button": False,
    }


def export_labelstudio(
    review_dir: str | Path, out: str | Path, image_url_prefix: str = "/data/local-files/?d="
) -> LabelStudioExport:
    review_dir = Path(review_dir).resolve()
    out = Path(out)
    for path in (out, out.with_suffix(".xml"), out.with_suffix(".project.json")):  # all three, before any is written
        check_output(path)
    tasks = []
    with ReviewStore(review_dir) as store:
        layout = _layout(store)
        raters = raters_per_sample(store)
        max_steps = 1
        for sid in store.sample_ids():
            s = store.sample(sid)
            assert s is not None
            outs = store.outputs(sid)
            side_model = {"left": layout[sid], "right": 1 - layout[sid]}
            data: dict[str, Any] = {
                "image": f"{image_url_prefix}{review_dir.name}/{s['image']}",
                "review_sample_id": sid,
                "question": s["prompt"],
                "reference": s["reference"],
            }
            regions = []
            for side, model in side_model.items():
                steps = outs[model]["steps"]
                max_steps = max(max_steps, len(steps))
                for i, step in enumerate(steps, start=1):
                    data[f"{side}_step_{i}"] = f"{i}. {step['text']}"
                    for j, box in enumerate(step["boxes"], start=1):
                        regions.append(
                            {
                                "id": f"{side[0]}{i}_{j}",
                                "from_name": "regions",
                                "to_name": "image",
                                "type": "rectanglelabels",
                                "original_width": s["width"],
                                "original_height": s["height"],
                                "image_rotation": 0,
                                "readonly": True,
                                "value": {
                                    **_percent_box(box, s["width"], s["height"]),
                                    "rectanglelabels": [f"{side.title()} {i}"],
                                },
                            }
                        )
                data[f"{side}_answer"] = f"Final answer: {outs[model]['answer']}"
            tasks.append({"data": data, "predictions": [{"model_version": "reasoning-steps", "result": regions}]})
    # Every task carries every step field so the config's Text tags always find their data.
    for t in tasks:
        for side in SIDES:
            for i in range(1, max_steps + 1):
                t["data"].setdefault(f"{side}_step_{i}", "")
    atomic_write_json(out, tasks)
    config = labelling_config(max_steps)
    config_path = out.with_suffix(".xml")
    atomic_write_text(config_path, config)
    project_path = out.with_suffix(".project.json")
    atomic_write_json(project_path, project_settings(review_dir.name, config, raters))
    return LabelStudioExport(out, config_path, project_path)


def parse_user_map(spec: str | None) -> dict[str, str]:
    """``"7:alice,bob@x.org:bob"`` → {"7": "alice", "bob@x.org": "bob"}."""
    out: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        user, sep, name = part.strip().rpartition(":")
        if not sep or not user or not name:
            raise OptionError(f"--users: {part.strip()!r} is not LABELSTUDIO_USER:ANNOTATOR")
        out[user.strip()] = name.strip()
    return out


def _user_keys(completed_by: Any) -> list[str]:
    if isinstance(completed_by, dict):
        keys = [str(completed_by[k]) for k in ("id", "email", "username") if completed_by.get(k) not in (None, "")]
    elif completed_by is None:
        keys = []
    else:
        keys = [str(completed_by)]
    return keys + [k.split("@", 1)[0] for k in keys if "@" in k]


def import_labelstudio(
    review_dir: str | Path, export: str | Path, user_map: dict[str, str] | None = None
) -> dict[str, int]:
    """Read a Label Studio JSON export into the store (upserts, origin "labelstudio"); returns counts."""
    export = Path(export)
    tasks = read_json(export)
    if not isinstance(tasks, list):
        raise DataError(f"{export}: expected a JSON list of tasks (Label Studio's JSON export)")
    if not tasks:
        raise DataError(f"{export}: no tasks (an empty export: export the project after annotating)")
    user_map = user_map or {}
    rows: list[tuple[str, str, str, int, int, int | None]] = []
    n_ann = skipped = 0
    with ReviewStore(review_dir) as store:
        layout = _layout(store)
        names = {a.name for a in store.annotators()}
        n_steps = store.n_steps()
        for t_i, task in enumerate(tasks):
            where = f"{export}, task #{t_i + 1} (id {task.get('id') if isinstance(task, dict) else None})"
            if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
                raise DataError(f"{where}: field `data` missing")
            sid = task["data"].get("review_sample_id")
            if sid is None or sid not in layout:
                raise DataError(f"{where}: data.review_sample_id {sid!r} is not a sample of {review_dir}")
            side_model = {"left": layout[sid], "right": 1 - layout[sid]}
            for a_i, ann in enumerate(task.get("annotations") or task.get("completions") or []):
                n_ann += 1
                if ann.get("was_cancelled") or not ann.get("result"):
                    skipped += 1
                    continue
                keys = _user_keys(ann.get("completed_by"))
                annotator = next((user_map[k] for k in keys if k in user_map), None)
                annotator = annotator or next((k for k in keys if k in names), None)
                if annotator not in names:
                    raise DataError(
                        f"{where}, annotation #{a_i + 1}: user {keys[0] if keys else None!r} is no annotator of "
                        f"this review set ({', '.join(sorted(names))}); map it with --users USER:ANNOTATOR"
                    )
                for r_i, res in enumerate(ann["result"]):
                    if res.get("type") != "choices":
                        continue
                    m = _FIELD.match(str(res.get("from_name", "")))
                    if not m:
                        continue
                    picked = (res.get("value") or {}).get("choices") or []
                    if len(picked) != 1:
                        raise DataError(
                            f"{where}, annotation #{a_i + 1}, result #{r_i + 1}: value.choices must "
                            f"hold one choice, got {picked!r}"
                        )
                    choice = str(picked[0]).strip().lower()
                    if m.group(1):  # a step
                        model, step, dim = side_model[m.group(1)], int(m.group(2)) - 1, m.group(3)
                        if step >= n_steps[(sid, model)]:
                            continue  # a rating on an empty step field: nothing to rate there
                    elif m.group(4):
                        model, step, dim = side_model[m.group(4)], -1, m.group(5)
                    else:
                        model, step, dim = -1, -1, m.group(6)
                    if dim.endswith("preference"):
                        if choice not in SIDES:
                            raise DataError(f"{where}, result #{r_i + 1} ({dim}): choice {choice!r} is not Left/Right")
                        value = side_model[choice]
                    else:
                        if choice not in YES_NO:
                            raise DataError(f"{where}, result #{r_i + 1} ({dim}): choice {choice!r} is not Yes/No")
                        value = YES_NO[choice]
                    rows.append((annotator, sid, dim, model, step, value))
        store.put_many(rows, origin="labelstudio")
    return {"ratings": len(rows), "annotations": n_ann, "skipped": skipped}
