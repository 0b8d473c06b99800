"""Build a review set from two models' prediction files: the samples, the images, the annotators, the blinding."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepmedix.annotation.store import (
    SCHEMA,
    connect,
    create_private_db,
    db_path,
    hash_token,
    new_token,
    now,
    transaction,
)
from deepmedix.data.frame import frame_for
from deepmedix.data.images import image_size, open_image
from deepmedix.errors import DataError, ImageError, InputFileError, OptionError
from deepmedix.io import check_output, iter_jsonl_objects, json_kind, read_yaml, staged_folder
from deepmedix.protocol import REASONING_SUFFIX, parse_completion

BROWSER_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}


@dataclass
class AnnotatorSpec:
    name: str
    group: str


@dataclass
class CreatedReview:
    dir: Path
    admin_token: str
    tokens: dict[str, str]  # annotator → token (shown once; only hashes are stored)
    n_samples: int


def parse_annotators(spec: str | Path) -> list[AnnotatorSpec]:
    """``"alice:1,bob:1,carol:2"`` or a YAML file: ``{groups: {1: [alice, bob], 2: [carol]}}`` or a list of
    ``{name, group}`` (optionally under ``annotators:``)."""
    path = Path(str(spec))
    if path.suffix.lower() in {".yaml", ".yml", ".json"} or path.is_file():
        data = read_yaml(path)
        out: list[AnnotatorSpec] = []
        if isinstance(data, dict) and "groups" in data:
            for group, names in (data["groups"] or {}).items():
                if not isinstance(names, list):
                    raise DataError(f"{path}: groups.{group} must be a list of annotator names")
                out += [AnnotatorSpec(str(n), str(group)) for n in names]
        else:
            items = data.get("annotators") if isinstance(data, dict) else data
            if not isinstance(items, list):
                raise DataError(f"{path}: expected `groups:` mapping or a list of {{name, group}}")
            for i, item in enumerate(items):
                if not isinstance(item, dict) or "name" not in item or "group" not in item:
                    raise DataError(f"{path}: annotator #{i + 1} needs fields `name` and `group`")
                out.append(AnnotatorSpec(str(item["name"]), str(item["group"])))
    else:
        out = []
        for part in str(spec).split(","):
            if not part.strip():
                continue
            name, sep, group = part.strip().partition(":")
            if not sep or not name.strip() or not group.strip():
                raise OptionError(f"--annotators: {part.strip()!r} is not NAME:GROUP")
            out.append(AnnotatorSpec(name.strip(), group.strip()))
    names = [a.name for a in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise OptionError(f"annotators: duplicate name(s) {', '.join(dupes)}")
    if not out:
        raise OptionError("annotators: none given")
    for a in out:
        if not a.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise OptionError(f"annotators: name {a.name!r} may hold only letters, digits, '-', '_' and '.'")
    return out


def _strip_suffix(prompt: str) -> str:
    """The question as a reader wants it: without the protocol instructions appended for the model."""
    return prompt.replace(REASONING_SUFFIX, "").strip()


def _steps_of(row: dict[str, Any], file: Path, line: int, size: tuple[int, int]) -> tuple[list[dict], str]:
    """Steps with boxes in ORIGINAL pixels, and the final answer, from one prediction line."""
    completion = row.get("completion")
    if completion is not None and not isinstance(completion, str):
        raise InputFileError(file, f"must be a string, got {json_kind(completion)}", line=line, field="completion")
    parsed = parse_completion(completion or "")
    answer = str(row.get("prediction") or parsed.answer)
    steps_field = row.get("steps")
    if steps_field is not None and not isinstance(steps_field, list):
        raise InputFileError(file, f"must be a list of steps, got {json_kind(steps_field)}", line=line, field="steps")
    if steps_field is not None:
        steps = []
        for i, step in enumerate(steps_field):
            if not isinstance(step, dict) or not isinstance(step.get("text"), str):
                raise InputFileError(file, "missing or not a string", line=line, field=f"steps[{i}].text")
            boxes = step.get("boxes") or []
            if not isinstance(boxes, list) or not all(
                isinstance(b, list) and len(b) == 4 and all(_is_number(v) for v in b) for b in boxes
            ):
                raise InputFileError(
                    file, f"must be a list of [x_min, y_min, x_max, y_max], got {boxes!r}", line, f"steps[{i}].boxes"
                )
            steps.append({"text": step["text"], "boxes": [[float(v) for v in b] for b in boxes]})
        return steps, answer
    # No parsed steps in the line: read the completion; its boxes are in the model's frame.
    w, h = size
    mis = row.get("model_input_size")
    if isinstance(mis, list) and len(mis) == 2 and all(_is_number(v) and v > 0 for v in mis):
        sx, sy = w / mis[0], h / mis[1]
    else:
        mw, mh = frame_for(str(row.get("model") or "")).input_size(w, h)
        sx, sy = w / mw, h / mh
    steps = [
        {"text": s.text, "boxes": [[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in s.boxes]} for s in parsed.steps
    ]
    return steps, answer


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _load_predictions(path: Path) -> dict[str, tuple[int, dict[str, Any]]]:
    by_id: dict[str, tuple[int, dict[str, Any]]] = {}
    for line, row in iter_jsonl_objects(path):
        if not isinstance(row.get("id"), str | int) or isinstance(row.get("id"), bool):
            raise InputFileError(path, "missing, or not a string", line=line, field="id")
        sid = str(row["id"])
        if sid in by_id:
            raise InputFileError(path, f"{sid!r} repeats line {by_id[sid][0]}", line=line, field="id")
        by_id[sid] = (line, row)
    if not by_id:
        raise DataError(f"{path}: no predictions (the file is empty)")
    return by_id


def _resolve_image(raw: Any, pred_file: Path, line: int, sid: str) -> Path:
    if not isinstance(raw, str) or not raw:
        raise InputFileError(pred_file, f"missing (record {sid!r})", line=line, field="image")
    p = Path(raw)
    for cand in [p] if p.is_absolute() else [pred_file.parent / p, Path.cwd() / p]:
        if cand.is_file():
            return cand.resolve()
    raise InputFileError(pred_file, f"image {raw!r} not found (record {sid!r})", line=line, field="image")


def _install_image(src: Path, images_dir: Path, link: bool, where: tuple[Path, int]) -> tuple[str, int, int]:
    """Copy (or link) the image into the review set; formats a browser cannot show become PNG. → (rel, W, H).

    An image that cannot be read is an error naming the prediction file and line (``where``)."""
    digest = hashlib.sha256(str(src).encode()).hexdigest()[:16]
    images_dir.mkdir(parents=True, exist_ok=True)
    try:
        if src.suffix.lower() in BROWSER_IMAGE_SUFFIXES:
            w, h = image_size(src)
            dest = images_dir / f"{digest}{src.suffix.lower()}"
            if not dest.exists():
                if link:
                    dest.symlink_to(src)
                else:
                    shutil.copy2(src, dest)
            return f"images/{dest.name}", w, h
        img = open_image(src)
    except ImageError as e:
        raise InputFileError(where[0], str(e), line=where[1], field="image") from None
    dest = images_dir / f"{digest}.png"
    if not dest.exists():
        img.image.save(dest)
    return f"images/{dest.name}", img.width, img.height


def create_review(
    predictions: list[str | Path],
    names: list[str],
    out_dir: str | Path,
    annotators: list[AnnotatorSpec],
    n_samples: int | None = None,
    seed: int = 0,
    within_group: str = "all",
    link_images: bool = False,
) -> CreatedReview:
    """Write ``out_dir/review.sqlite`` and ``out_dir/images/``; return the one-time tokens."""
    if len(predictions) != 2 or len(names) != 2:
        raise OptionError("a review compares exactly two models: give two --predictions and two --names")
    if names[0] == names[1]:
        raise OptionError("--names: the two models need different names")
    if within_group not in {"all", "split"}:
        raise OptionError(f"--within-group must be 'all' or 'split', not {within_group!r}")
    out = Path(out_dir)
    if db_path(out).exists():
        raise OptionError(f"{db_path(out)} already exists: choose a new --out (a review set is never overwritten)")
    check_output(out, folder=True)
    files = [Path(p) for p in predictions]
    preds = [_load_predictions(f) for f in files]
    common = [sid for sid in preds[0] if sid in preds[1]]
    if not common:
        raise DataError(f"{files[0]} and {files[1]} share no sample id")
    rng = random.Random(seed)
    if n_samples is None or n_samples >= len(common):
        if n_samples is not None and n_samples > len(common):
            raise OptionError(f"--samples {n_samples}: only {len(common)} samples are in both prediction files")
        chosen = common[:]
        rng.shuffle(chosen)
    else:
        chosen = rng.sample(common, n_samples)

    # Built in a staging folder: a bad sample or image half-way leaves no review set behind.
    with staged_folder(out) as staging:
        samples: list[dict[str, Any]] = []
        outputs: list[tuple[str, int, str, str, str]] = []
        for pos, sid in enumerate(chosen):
            line0, row0 = preds[0][sid]
            src = _resolve_image(row0.get("image"), files[0], line0, sid)
            rel, w, h = _install_image(src, staging / "images", link_images, (files[0], line0))
            reference = row0.get("reference", preds[1][sid][1].get("reference"))
            if reference is None:
                raise InputFileError(files[0], f"missing (record {sid!r})", line=line0, field="reference")
            if isinstance(reference, list):
                reference = " | ".join(str(r) for r in reference)
            samples.append(
                {
                    "sample_id": sid,
                    "position": pos,
                    "image": rel,
                    "width": w,
                    "height": h,
                    "prompt": _strip_suffix(str(row0.get("prompt") or "")),
                    "reference": str(reference),
                    "task": row0.get("task"),
                    "benchmark": row0.get("benchmark"),
                }
            )
            for model, (file, pred) in enumerate(zip(files, preds, strict=True)):
                line, row = pred[sid]
                steps, answer = _steps_of(row, file, line, (w, h))
                outputs.append((sid, model, str(row.get("completion") or ""), answer, json.dumps(steps)))

        groups: dict[str, list[str]] = {}
        for a in annotators:
            groups.setdefault(a.group, []).append(a.name)
        assignments: list[tuple[str, str, int, int]] = []
        for members in groups.values():
            for i, name in enumerate(members):
                # "split": the group's annotators share its samples, so each sample is rated once per group.
                mine = chosen if within_group == "all" else [s for j, s in enumerate(chosen) if j % len(members) == i]
                for pos, sid in enumerate(mine):
                    # Blinding: the side each model appears on, fixed per (seed, annotator, sample) and stored.
                    left = random.Random(f"{seed}|{name}|{sid}").randrange(2)
                    assignments.append((name, sid, pos, left))

        tokens = {a.name: new_token() for a in annotators}
        admin = new_token()
        meta = {
            "created_at": now(),
            "seed": seed,
            "within_group": within_group,
            "n_samples": len(chosen),
            "predictions": [str(f.resolve()) for f in files],
            "admin_token_hash": hash_token(admin),
        }
        create_private_db(staging)  # un-blinded ratings and token hashes: 0600 from the first byte
        conn = connect(staging)
        try:
            conn.executescript(SCHEMA)
            with transaction(conn):
                conn.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
                conn.executemany(
                    "INSERT INTO models VALUES (?, ?, ?)",
                    [(i, n, str(f)) for i, (n, f) in enumerate(zip(names, files, strict=True))],
                )
                conn.executemany(
                    "INSERT INTO samples VALUES (:sample_id, :position, :image, :width, :height, :prompt, :reference, "
                    ":task, :benchmark)",
                    samples,
                )
                conn.executemany("INSERT INTO outputs VALUES (?, ?, ?, ?, ?)", outputs)
                conn.executemany(
                    "INSERT INTO annotators VALUES (?, ?, ?, NULL)",
                    [(a.name, a.group, hash_token(tokens[a.name])) for a in annotators],
                )
                conn.executemany("INSERT INTO assignments VALUES (?, ?, ?, ?)", assignments)
        finally:
            conn.close()
    return CreatedReview(out, admin, tokens, len(chosen))
