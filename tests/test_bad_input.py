"""Every command, given bad input: one line naming the file (and line and field), a non-zero exit, no traceback, and
nothing written — one table of commands × cases.

Each case builds its files in a fresh folder, runs ``deepmedix`` in this process (an exception escaping ``main`` is
a traceback), and asserts: the exit status; that stderr ends in ONE ``deepmedix CMD: error: …`` line holding every
expected part (the file, ``line N``, ``field 'x'``); no traceback; and that the folder is exactly as before (no
output, no temporary file, no empty folder) — or, for predict's appended output, that what is there is complete.
A case whose input is good (a byte-order mark, CRLF line ends) asserts that the command got past its input: exit 0,
or for a command that loads a model, the error about the (absent) model — so the input was read and checked first.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from deepmedix import cli
from deepmedix.data.convert import CSV_READ_LIMIT, MAX_CSV_FIELD

ROOT = Path(__file__).resolve().parents[1]
NO_MODEL = "/nonexistent/deepmedix-model"  # a model that cannot load: reaching it proves the input was accepted
MODEL_ERROR = "nonexistent/deepmedix-model"
BIG_FIELD = 200_000  # characters: over the csv module's default 128 KB field limit, under deepmedix's

Record = dict[str, Any]
Line = Record | bytes | str  # a record, or a raw line as written (bytes kept as they are)


# --- files ----------------------------------------------------------------------------------------------------------


def png(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, 128).save(path)
    return path


def jsonl(path: Path, lines: list[Line], end: bytes = b"\n", bom: bool = False, torn: bool = False) -> Path:
    """``lines`` as a JSONL file, each ended by ``end`` (the last by nothing when ``torn``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = [
        line if isinstance(line, bytes) else (line if isinstance(line, str) else json.dumps(line)).encode()
        for line in lines
    ]
    text = b"".join(r + end for r in raw)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + (text[: -len(end)] if torn and raw else text))
    return path


def sample(i: int = 0, **change: Any) -> Record:
    record = {
        "id": f"s{i}",
        "source": "open-i",
        "split": ("train", "test")[i % 2],  # the demo needs both
        "task": "vqa",
        "images": [{"path": "img.png", "width": 64, "height": 48}],
        "prompt": "Is there a pleural effusion?",
        "answer": "yes",
        "answer_type": "closed",
        "patient_id": f"p{i}",
        "provenance": {"dataset": "hand-made"},
    }
    return {**record, **change}


def eval_line(i: int = 0, **change: Any) -> Record:
    record = {
        "id": f"q{i}",
        "task": "vqa",
        "benchmark": "ext-vqa/vqa",
        "prediction": "yes",
        "reference": "yes",
        "answer_type": "closed",
    }
    return {**record, **change}


def report_line(i: int = 0, text: str = "No pleural effusion.", **change: Any) -> Record:
    record = {"id": f"r{i}", "task": "report_findings", "prediction": text, "reference": "No pleural effusion."}
    return {**record, **change}


COMPLETION = "<think>\nStep 1: the right lower zone [10, 10, 40, 40] is clear.\n</think>\nThe answer is: \\boxed{no}"


def review_line(i: int = 0, **change: Any) -> Record:
    record = {
        "id": f"v{i}",
        "task": "vqa",
        "image": "img.png",
        "prompt": "Is there a pleural effusion?",
        "completion": COMPLETION,
        "prediction": "no",
        "reference": "no",
        "steps": [{"text": "the right lower zone is clear", "boxes": [[10.0, 10.0, 40.0, 40.0]]}],
        "image_size": [64, 48],
    }
    return {**record, **change}


def reward_line(i: int = 0, **change: Any) -> Record:
    return {"id": i, "completion": COMPLETION, "reference": "no", "answer_type": "closed", **change}


def label_line(i: int = 0, **change: Any) -> Record:
    return {"id": f"r{i}", "text": "No pleural effusion. Heart size is normal.", **change}


def judgment_line(i: int = 0, **change: Any) -> Record:
    return {"model_a": "m1", "model_b": "m2", "winner": "ab"[i % 2], **change}


def recipes_without_model(d: Path) -> Path:
    """The tiny recipes, pointed at a model that cannot load."""
    folder = d / "recipes"
    folder.mkdir()
    for recipe in (ROOT / "recipes" / "tiny").glob("*.yaml"):
        text = recipe.read_text().replace("model: tiny", f"model: {NO_MODEL}")
        (folder / recipe.name).write_text(text)
    return folder


# --- the commands that read a JSONL file, each with one valid record and the fields to spoil -----------------------


@dataclass(frozen=True)
class JsonlCommand:
    name: str
    record: Callable[..., Record]  # record(i, **change): a valid line
    argv: Callable[[Path, Path], list[str]]  # (folder, input file) → arguments; writes the other inputs it needs
    text_field: str  # a string field: NaN, a lone surrogate, invalid UTF-8 and a number go there
    number_field: tuple[str, Callable[[Any], Record]]  # (field path, change) putting a number there
    wrong_type: tuple[str, Record]  # (field path, change) with a value of the wrong type
    loads_model: bool = False  # good input ends at the model error (exit 1) instead of exit 0
    out: str = "out"  # the output (a folder, or a file under out/) the output cases spoil
    resumes: bool = False  # reads another command's appended output: a torn last line is left out, with a warning


def _other_predictions(d: Path, record: Callable[..., Record], **change: Any) -> Path:
    return jsonl(d / "other.jsonl", [record(0, **change), record(1, **change)])


JSONL_COMMANDS = [
    JsonlCommand(
        "stats",
        sample,
        lambda d, f: ["stats", str(f), "--json", "out/stats.json"],
        "answer",
        ("images[0].width", lambda v: {"images": [{"path": "img.png", "width": v, "height": 48}]}),
        ("images[0].width", {"images": [{"path": "img.png", "width": "64", "height": 48}]}),
        out="out/stats.json",
    ),
    JsonlCommand(
        "predict",
        sample,
        lambda d, f: ["predict", "--data", str(f), "--out", "out/p.jsonl", "--model", NO_MODEL],
        "prompt",
        ("images[0].height", lambda v: {"images": [{"path": "img.png", "width": 64, "height": v}]}),
        ("split", {"split": 3}),
        loads_model=True,
        out="out/p.jsonl",
    ),
    JsonlCommand(
        "bench",
        sample,
        lambda d, f: ["bench", "--data", str(f), "--out", "out", "--model", NO_MODEL, "--no-meteor", "--no-cache"],
        "answer",
        ("images[0].width", lambda v: {"images": [{"path": "img.png", "width": v, "height": 48}]}),
        ("answer", {"answer": ["yes"]}),
        loads_model=True,
    ),
    JsonlCommand(
        "train",
        sample,
        lambda d, f: [
            *("train", "sft", "--recipe", str(ROOT / "recipes/tiny/sft.yaml"), "--data", str(f)),
            *("--output-dir", "out", "--model", NO_MODEL),
        ],
        "answer",
        ("images[0].width", lambda v: {"images": [{"path": "img.png", "width": v, "height": 48}]}),
        ("images", {"images": "img.png"}),
        loads_model=True,
    ),
    JsonlCommand(
        "pipeline",
        sample,
        lambda d, f: ["pipeline", "--recipes", str(recipes_without_model(d)), "--data", str(f), "--output-dir", "out"],
        "answer",
        ("images[0].width", lambda v: {"images": [{"path": "img.png", "width": v, "height": 48}]}),
        ("task", {"task": None}),
        loads_model=True,
    ),
    JsonlCommand(
        "coldstart synthesize",
        sample,
        lambda d, f: ["coldstart", "synthesize", "--data", str(f), "--out", "out/cs.jsonl"],
        "answer",
        ("images[0].width", lambda v: {"images": [{"path": "img.png", "width": v, "height": 48}]}),
        ("id", {"id": 7}),
        out="out/cs.jsonl",
    ),
    JsonlCommand(
        "serve",
        sample,
        lambda d, f: ["serve", "--samples", str(f), "--model", NO_MODEL],
        "prompt",
        ("images[0].width", lambda v: {"images": [{"path": "img.png", "width": v, "height": 48}]}),
        ("boxes[0]", {"boxes": [[1, 2, 3, 4]]}),
        loads_model=True,
        out="",
    ),
    JsonlCommand(
        "prepare mix",
        sample,
        lambda d, f: ["prepare", "mix", str(f), "--out", "out", "--scale", "0.00001"],
        "answer",
        ("images[0].width", lambda v: {"images": [{"path": "img.png", "width": v, "height": 48}]}),
        ("patient_id", {"patient_id": 12}),
    ),
    JsonlCommand(
        "demo",
        sample,
        lambda d, f: ["demo", "--data", str(f), "--out", "out", "--base-model", NO_MODEL, "--quick", "--no-meteor"],
        "answer",
        ("images[0].width", lambda v: {"images": [{"path": "img.png", "width": v, "height": 48}]}),
        ("provenance", {"provenance": "hand-made"}),
        loads_model=True,
    ),
    JsonlCommand(
        "reward score",
        reward_line,
        lambda d, f: ["reward", "score", str(f), "--out", "out/r.jsonl"],
        "reference",
        ("image_size[0]", lambda v: {"image_size": [v, 512]}),
        ("completion", {"completion": 123}),
        out="out/r.jsonl",
    ),
    JsonlCommand(
        "label",
        label_line,
        lambda d, f: ["label", str(f), "--out", "out/l.jsonl"],
        "text",
        ("id", lambda v: {"id": v}),
        ("id", {"id": {"a": 1}}),
        out="out/l.jsonl",
    ),
    JsonlCommand(
        "eval",
        eval_line,
        lambda d, f: ["eval", "--predictions", str(f), "--out", "out", "--no-meteor", "--no-cache"],
        "reference",
        ("image_size[0]", lambda v: {"image_size": [v, 48]}),
        ("steps", {"steps": "abc"}),
    ),
    JsonlCommand(
        "arena run",
        report_line,
        lambda d, f: [
            *("arena", "run", "--predictions", str(f), str(_other_predictions(d, report_line, text="Effusion."))),
            *("--judge", "offline", "--out", "out", "--budget", "2", "--bootstrap", "10"),
        ],
        "prediction",
        ("rank", lambda v: {"rank": v}),
        ("reference", {"reference": ["No pleural effusion."]}),
        resumes=True,
    ),
    JsonlCommand(
        "arena fit",
        judgment_line,
        lambda d, f: ["arena", "fit", str(f), "--out", "out", "--bootstrap", "10"],
        "model_a",
        ("prob", lambda v: {"prob": v}),
        ("prob", {"prob": "0.5"}),
    ),
    JsonlCommand(
        "review create",
        review_line,
        lambda d, f: [
            *("review", "create", "--predictions", str(f), str(_other_predictions(d, review_line))),
            *("--names", "A", "B", "--annotators", "alice:1", "--out", "out"),
        ],
        "reference",
        ("image_size[0]", lambda v: {"image_size": [v, 48]}),
        ("steps[0].boxes", {"steps": [{"text": "a", "boxes": "none"}]}),
    ),
]


# --- the cases ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    command: str
    case: str
    build: Callable[[Path], list[str]]  # writes the inputs into the folder, returns the arguments
    expect: tuple[str, ...] = ()  # parts the error line must hold ("{ro}" stands for the read-only folder)
    accepted: bool = False  # good input: exit 0 (or the model's error, with ``loads_model``); ``expect``: warnings
    loads_model: bool = False

    @property
    def id(self) -> str:
        return f"{self.command.replace(' ', '-')}/{self.case}"


def _raw(record: Record, field_path: str, token: bytes) -> bytes:
    """``record`` as a JSON line with ``token`` written as the value at ``field_path`` (a top-level field, or the
    first of a nested one), byte for byte: NaN, 1e999, a lone surrogate escape, invalid UTF-8."""
    marker = "@@marker@@"
    top = field_path.split("[")[0].split(".")[0]
    value = record[top]
    if field_path == top:
        changed = {**record, top: marker}
    elif isinstance(value, list) and isinstance(value[0], dict):  # images[0].width
        key = field_path.split(".")[-1]
        changed = {**record, top: [{**value[0], key: marker}, *value[1:]]}
    else:  # image_size[0]
        changed = {**record, top: [marker, *value[1:]]}
    return json.dumps(changed, ensure_ascii=False).encode().replace(json.dumps(marker).encode(), token)


def _generic(c: JsonlCommand) -> list[Case]:
    """The cases every JSONL input gets: line 2 is bad (line 1 is good), and the file itself is wrong."""
    text, (num_field, num_change), (wrong_field, wrong_change) = c.text_field, c.number_field, c.wrong_type
    first = c.record(0)
    with_num = c.record(1, **num_change(0))

    def lines(second: Line, **kw: Any) -> Callable[[Path], list[str]]:
        def build(d: Path) -> list[str]:
            png(d / "img.png")  # the image samples and predictions name
            return c.argv(d, jsonl(d / "in.jsonl", [first, second], **kw))

        return build

    def file_cases() -> list[Case]:
        return [
            Case(c.name, "empty file", lambda d: c.argv(d, jsonl(d / "in.jsonl", [])), ("in.jsonl",)),
            Case(c.name, "input is a folder", lambda d: c.argv(d, _folder(d / "in.jsonl")), ("in.jsonl",)),
            Case(c.name, "input missing", lambda d: c.argv(d, d / "in.jsonl"), ("in.jsonl",)),
        ]

    cases = [
        Case(c.name, "NaN", lines(_raw(c.record(1), text, b"NaN")), ("in.jsonl", "line 2", f"field '{text}'")),
        Case(c.name, "Infinity", lines(_raw(with_num, num_field, b"Infinity")), ("in.jsonl", "line 2", num_field)),
        Case(c.name, "1e999", lines(_raw(with_num, num_field, b"1e999")), ("in.jsonl", "line 2", num_field)),
        Case(
            c.name,
            "lone surrogate",
            lines(_raw(c.record(1), text, b'"a \\ud800 b"')),
            ("in.jsonl", "line 2", f"field '{text}'"),
        ),
        Case(c.name, "invalid UTF-8", lines(_raw(c.record(1), text, b'"a \xff b"')), ("in.jsonl", "line 2", "UTF-8")),
        Case(c.name, "truncated line", lines(json.dumps(c.record(1))[:25] + "\n"), ("in.jsonl", "line 2")),
        Case(
            c.name,
            "torn last line (a kill)",
            lines(json.dumps(c.record(1))[:25], torn=True),
            ("in.jsonl", "line 2") if not c.resumes else ("in.jsonl, line 2: cut short",),
            accepted=c.resumes,
        ),
        Case(c.name, "array, not object", lines("[1, 2]"), ("in.jsonl", "line 2", "object")),
        Case(
            c.name, "wrong type", lines(c.record(1, **wrong_change)), ("in.jsonl", "line 2", f"field '{wrong_field}'")
        ),
        Case(c.name, "byte-order mark", lines(c.record(1), bom=True), accepted=True, loads_model=c.loads_model),
        Case(c.name, "CRLF line ends", lines(c.record(1), end=b"\r\n"), accepted=True, loads_model=c.loads_model),
        *file_cases(),
    ]
    if c.out:
        good = lines(c.record(1))
        is_folder = not c.out.endswith((".json", ".jsonl"))
        cases += [
            Case(
                c.name,
                "output is a file" if is_folder else "output is a folder",
                _spoil(good, c.out, "file" if is_folder else "folder"),
                (c.out,),
            ),
            Case(c.name, "output under a file", _relocate(good, "f.txt", make_file=True), ("f.txt",)),
            Case(c.name, "output folder read-only", _relocate(good, "{ro}"), ("{ro}",)),
        ]
    return cases


def _folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _spoil(build: Callable[[Path], list[str]], out: str, what: str) -> Callable[[Path], list[str]]:
    def run(d: Path) -> list[str]:
        argv = build(d)
        target = d / out
        target.parent.mkdir(parents=True, exist_ok=True)
        if what == "file":
            target.write_text("not a folder\n")
        else:
            target.mkdir()
        return argv

    return run


def _relocate(build: Callable[[Path], list[str]], root: str, make_file: bool = False) -> Callable[[Path], list[str]]:
    """The outputs (arguments ``out`` and ``out/...``) moved under ``root``: a regular file, or a read-only folder."""

    def run(d: Path) -> list[str]:
        argv = build(d)
        if make_file:
            (d / root).write_text("a file, not a folder\n")
        return [f"{root}/{a}" if a == "out" or a.startswith("out/") else a for a in argv]

    return run


def _with(builder: Callable[[Path], Any], argv: list[str]) -> Callable[[Path], list[str]]:
    """Run ``builder`` (it writes the inputs) and return ``argv``."""

    def run(d: Path) -> list[str]:
        builder(d)
        return argv

    return run


def _eval(*lines: Line) -> Callable[[Path], list[str]]:
    return _with(
        lambda d: jsonl(d / "p.jsonl", list(lines)),
        ["eval", "--predictions", "p.jsonl", "--out", "out", "--no-meteor", "--no-cache"],
    )


def _reward(*lines: Line, mode: str = "paper", on_error: str = "fail") -> Callable[[Path], list[str]]:
    return _with(
        lambda d: jsonl(d / "r.jsonl", list(lines)),
        ["reward", "score", "r.jsonl", "--mode", mode, "--on-error", on_error, "--out", "out/r.jsonl"],
    )


def _samples(*lines: Line, image: bytes | None = None) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        png(d / "img.png")
        if image is not None:
            (d / "bad.png").write_bytes(image)
        (d / "folder.png").mkdir()
        return jsonl(d / "s.jsonl", list(lines))

    return build


SAMPLE_READERS = {  # commands that read samples and their images, and how each is called on s.jsonl
    "predict": ["predict", "--data", "s.jsonl", "--out", "out/p.jsonl", "--model", NO_MODEL],
    "bench": ["bench", "--data", "s.jsonl", "--out", "out", "--model", NO_MODEL, "--no-meteor"],
    "train": ["train", "sft", "--recipe", str(ROOT / "recipes/tiny/sft.yaml"), "--data", "s.jsonl"]
    + ["--output-dir", "out", "--model", NO_MODEL],
    "serve": ["serve", "--samples", "s.jsonl", "--model", NO_MODEL],
    "demo": ["demo", "--data", "s.jsonl", "--out", "out", "--base-model", NO_MODEL, "--quick", "--no-meteor"],
}

SAMPLE_CASES = [
    ("image missing", [sample(0), sample(1, images=[{"path": "missing.png"}])], None, "images[0].path"),
    ("image is not an image", [sample(0), sample(1, images=[{"path": "bad.png"}])], b"not a PNG", "images[0].path"),
    ("image is a folder", [sample(0), sample(1, images=[{"path": "folder.png"}])], None, "images[0].path"),
    ("unknown task", [sample(0), sample(1, task="caption")], None, "task"),
    ("unknown answer_type", [sample(0), sample(1, answer_type="maybe")], None, "answer_type"),
    ("negative width", [sample(0), sample(1, images=[{"path": "img.png", "width": -64}])], None, "images[0].width"),
    ("unknown field", [sample(0), sample(1, colour="grey")], None, "colour"),
]


def _sample_cases() -> list[Case]:
    cases = []
    for name, argv in SAMPLE_READERS.items():
        for case, lines, image, field_ in SAMPLE_CASES:
            cases.append(Case(name, case, _with(_samples(*lines, image=image), argv), ("s.jsonl", "line 2", field_)))
    for case, lines, _, field_ in SAMPLE_CASES[3:]:  # stats reads no image
        argv = ["stats", "s.jsonl", "--json", "out/stats.json"]
        cases.append(Case("stats", case, _with(_samples(*lines), argv), ("s.jsonl", "line 2", field_)))
    return cases


def _predict_resume(d: Path) -> list[str]:
    """An earlier output whose line 2 is damaged (not the torn tail of a kill): refused, left as it is."""
    png(d / "img.png")
    jsonl(d / "s.jsonl", [sample(0), sample(1)])
    jsonl(d / "out" / "p.jsonl", [{"id": "s0", "model": NO_MODEL}, b'{"id": "s1", "mod', {"id": "s2"}])
    return ["predict", "--data", "s.jsonl", "--out", "out/p.jsonl", "--model", NO_MODEL]


def _predict_kept(d: Path) -> list[str]:
    """An earlier output of complete lines and a bad sample: refused before anything is appended."""
    png(d / "img.png")
    jsonl(d / "s.jsonl", [sample(0), sample(1, images=[{"path": "missing.png"}])])
    jsonl(d / "out" / "p.jsonl", [{"id": "s0", "model": NO_MODEL, "task": "vqa", "prediction": "yes"}])
    return ["predict", "--data", "s.jsonl", "--out", "out/p.jsonl", "--model", NO_MODEL]


def _open_i(
    d: Path, findings: str = "No effusion.", image: bytes | None = None, raw: bytes | None = None, **kw: Any
) -> Path:
    """The Open-I layout (Kaggle): the two CSVs and images/images_normalized/; ``raw``: the reports CSV's bytes."""
    root = d / "open-i"
    images = root / "images" / "images_normalized"
    png(images / "1_IM-0001-4001.dcm.png")
    if image is not None:
        (images / "1_IM-0001-4001.dcm.png").write_bytes(image)
    reports = f'uid,findings,impression\n1,"{findings}",No acute disease.\n'
    write_text(root / "indiana_reports.csv", reports, raw=raw, **kw)
    write_text(root / "indiana_projections.csv", "uid,filename,projection\n1,1_IM-0001-4001.dcm.png,Frontal\n", **kw)
    return root


def write_text(path: Path, text: str, newline: str = "\n", bom: bool = False, raw: bytes | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = raw if raw is not None else text.replace("\n", newline).encode()
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def _ext_vqa(d: Path, answer: bytes = b'["yes"]', raw: bytes | None = None) -> Path:
    """MIMIC-Ext-MIMIC-CXR-VQA's dataset/train.json over MIMIC-CXR-JPG files/ (one record)."""
    root = d / "ext-vqa"
    png(root / "files" / "p10" / "p10000001" / "s50000001" / "aaaa.jpg")
    record = (
        b'[\n  {\n    "idx": 0,\n    "image_id": "aaaa",\n    "subject_id": "10000001",\n    "study_id": "50000001",\n'
        b'    "question": "Is there an effusion?",\n    "content_type": "presence",\n    "semantic_type": "verify",\n'
        b'    "answer": ' + answer + b"\n  }\n]\n"
    )
    write_text(root / "dataset" / "train.json", "", raw=raw if raw is not None else record)
    return root


LISTENERS: list[socket.socket] = []  # sockets holding a port for the "port in use" cases, closed after each case


def _port_in_use() -> str:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    LISTENERS.append(listener)
    return str(listener.getsockname()[1])


def _source_csv(source: str, name: str, *others: str) -> Callable[[Path], list[str]]:
    """A source folder whose CSV ``name`` has invalid UTF-8 in its header (``others``: files that must be there)."""

    def build(d: Path) -> None:
        for other in others:
            write_text(d / source / other, "dicom_id,subject_id,study_id,ViewPosition\n")
        write_text(d / source / name, "", raw=b"subject_\xffid,study_id\n1,2\n")

    return _with(build, ["prepare", source, "--root", source, "--out", "out/s.jsonl"])


def _xraybench_embedded(d: Path) -> None:
    """A parquet data file whose images are embedded, the second row without an answer."""
    import datasets

    image = png(d / "embedded.png").read_bytes()
    rows = {
        "prompt": ["Is there an effusion?", "Is there an effusion?"],
        "answer": ["yes", ""],
        "image": [{"bytes": image, "path": None}, {"bytes": image[:-1] + b"\x00", "path": None}],
        "group": ["Ext-VQA", "Ext-VQA"],
    }
    datasets.Dataset.from_dict(rows).to_parquet(str(d / "xb.parquet"))
    (d / "embedded.png").unlink()


def _review_set(d: Path) -> Path:
    """A review set made by `deepmedix review create` from two prediction files."""
    png(d / "img.png")
    jsonl(d / "a.jsonl", [review_line(0), review_line(1)])
    jsonl(d / "b.jsonl", [review_line(0), review_line(1)])
    argv = ["review", "create", "--predictions", "a.jsonl", "b.jsonl", "--names", "A", "B"]
    assert cli.main([*argv, "--annotators", "alice:1", "--out", "set"]) == 0
    return d / "set"


def _labelstudio_export(raw: bytes) -> Callable[[Path], list[str]]:
    def run(d: Path) -> list[str]:
        _review_set(d)
        write_text(d / "export.json", "", raw=raw)
        return ["review", "import-labelstudio", "--dir", "set", "--export", "export.json"]

    return run


def _model_card(raw: bytes) -> Callable[[Path], list[str]]:
    def run(d: Path) -> list[str]:
        (d / "final").mkdir()
        (d / "final" / "run_info.json").write_text(json.dumps({"stage": "sft", "base_model": "tiny"}))
        write_text(d / "metrics.json", "", raw=raw)
        return ["model-card", "final", "--eval", "metrics.json"]

    return run


def _infer(image: bytes | None = None, folder: bool = False, **flags: str) -> Callable[[Path], list[str]]:
    def run(d: Path) -> list[str]:
        if folder:
            (d / "x.png").mkdir()
        elif image is not None:
            (d / "x.png").write_bytes(image)
        else:
            png(d / "x.png")
        (d / "f.txt").write_text("a file\n")
        (d / "dir.json").mkdir()
        extra = [a for k, v in flags.items() for a in (f"--{k}", v)]
        return ["infer", "x.png", "--question", "Is there an effusion?", "--model", NO_MODEL, *extra]

    return run


SPECIFIC = [
    # eval: the fields of a prediction line, typed
    Case(
        "eval", "image_size 'x'", _eval(eval_line(0), eval_line(1, image_size="x")), ("p.jsonl", "line 2", "image_size")
    ),
    Case(
        "eval",
        "prediction null",
        _eval(eval_line(0), eval_line(1, prediction=None, completion="\\boxed{yes}")),
        ("p.jsonl", "line 2", "field 'prediction'"),
    ),
    Case(
        "eval", "completion 123", _eval(eval_line(0), eval_line(1, completion=123)), ("p.jsonl", "line 2", "completion")
    ),
    Case(
        "eval",
        "reference box of 2 numbers",
        _eval(eval_line(0), eval_line(1, reference_boxes=[[1, 2]])),
        ("p.jsonl", "line 2", "reference_boxes[0]"),
    ),
    Case(
        "eval",
        "step box of 3 numbers",
        _eval(eval_line(0), eval_line(1, steps=[{"boxes": [[1, 2, 3]]}])),
        ("p.jsonl", "line 2", "steps[0].boxes[0]"),
    ),
    Case(
        "eval", "unknown task", _eval(eval_line(0), eval_line(1, task="caption")), ("p.jsonl", "line 2", "field 'task'")
    ),
    Case(
        "eval",
        "unknown answer_type",
        _eval(eval_line(0), eval_line(1, answer_type="maybe")),
        ("p.jsonl", "line 2", "field 'answer_type'"),
    ),
    Case(
        "eval",
        "model_input_size 0",
        _eval(
            eval_line(0),
            eval_line(1, completion="[1, 2, 3, 4] \\boxed{yes}", image_size=[64, 48], model_input_size=[0, 48]),
        ),
        ("p.jsonl", "line 2", "model_input_size"),
    ),
    # reward: paper mode checks the boxes as grounded mode does
    Case(
        "reward score",
        "paper: reference_boxes 'none'",
        _reward(reward_line(0, reference_boxes="none")),
        ("r.jsonl", "line 1", "field 'reference_boxes'"),
    ),
    Case(
        "reward score",
        "paper: reference box [1, 2]",
        _reward(reward_line(0, reference_boxes=[[1, 2]])),
        ("r.jsonl", "line 1", "field 'reference_boxes'"),
    ),
    Case(
        "reward score",
        "grounded: reference box [1, 2]",
        _reward(reward_line(0, reference_boxes=[[1, 2]]), mode="grounded"),
        ("r.jsonl", "line 1", "field 'reference_boxes'"),
    ),
    Case(
        "reward score",
        "image_size '512'",
        _reward(reward_line(0, image_size=["512", "512"])),
        ("r.jsonl", "line 1", "field 'image_size'"),
    ),
    Case(
        "reward score",
        "unknown answer_type",
        _reward(reward_line(0, answer_type="maybe")),
        ("r.jsonl", "line 1", "field 'answer_type'"),
    ),
    Case(
        "reward score",
        "every line skipped",
        _reward(reward_line(0, reference=1), on_error="skip"),
        ("r.jsonl", "skipped"),
    ),
    # label: the id is copied to the output, so it must be valid JSON
    Case(
        "label",
        "id NaN",
        _with(
            lambda d: jsonl(d / "l.jsonl", [b'{"id": NaN, "text": "No effusion."}']),
            ["label", "l.jsonl", "--out", "out/l.jsonl"],
        ),
        ("l.jsonl", "line 1", "field 'id'"),
    ),
    # samples and their images, before any model is loaded
    *_sample_cases(),
    Case("predict", "earlier output damaged", _predict_resume, ("out/p.jsonl", "line 2")),
    Case("predict", "earlier output kept on a bad sample", _predict_kept, ("s.jsonl", "line 2", "images[0].path")),
    # prepare: the converters' CSV and JSON files
    Case(
        "prepare open-i",
        "CSV field over 128 KB",
        _with(
            lambda d: _open_i(d, findings="x" * BIG_FIELD),
            ["prepare", "open-i", "--root", "open-i", "--out", "out/s.jsonl"],
        ),
        accepted=True,
    ),
    Case(
        "prepare open-i",
        "CSV field over 1 MiB",
        _with(
            lambda d: _open_i(d, findings="x" * (MAX_CSV_FIELD + 1)),
            ["prepare", "open-i", "--root", "open-i", "--out", "out/s.jsonl"],
        ),
        ("indiana_reports.csv", "row 1", "field 'findings'", "unclosed quote"),
    ),
    Case(
        "prepare open-i",
        "CSV unclosed quote",
        _with(
            lambda d: _open_i(d, raw=b'uid,findings,impression\n1,"No effusion.,None.\n2,x,y\n'),
            ["prepare", "open-i", "--root", "open-i", "--out", "out/s.jsonl"],
        ),
        ("indiana_reports.csv", "row 1", "malformed row"),
    ),
    Case(
        "prepare open-i",
        "CSV unclosed quote over the read limit",
        _with(
            lambda d: _open_i(d, raw=b'uid,findings,impression\n1,"' + b"x" * (CSV_READ_LIMIT + 1)),
            ["prepare", "open-i", "--root", "open-i", "--out", "out/s.jsonl"],
        ),
        ("indiana_reports.csv", "row 1", "not valid CSV"),
    ),
    Case(
        "prepare open-i",
        "CSV invalid UTF-8",
        _with(
            lambda d: _open_i(d, raw=b"uid,findings,impression\n1,No \xff effusion.,None.\n"),
            ["prepare", "open-i", "--root", "open-i", "--out", "out/s.jsonl"],
        ),
        ("indiana_reports.csv", "line 2", "UTF-8"),
    ),
    Case(
        "prepare open-i",
        "CSV byte-order mark and CRLF",
        _with(
            lambda d: _open_i(d, newline="\r\n", bom=True),
            ["prepare", "open-i", "--root", "open-i", "--out", "out/s.jsonl"],
        ),
        accepted=True,
    ),
    Case(
        "prepare open-i",
        "CSV empty",
        _with(
            lambda d: _open_i(d, raw=b""),
            ["prepare", "open-i", "--root", "open-i", "--out", "out/s.jsonl"],
        ),
        ("indiana_reports.csv",),
    ),
    Case(
        "prepare open-i",
        "image is not an image",
        _with(
            lambda d: _open_i(d, image=b"GIF89a-not-really"),
            ["prepare", "open-i", "--root", "open-i", "--out", "out/s.jsonl"],
        ),
        ("indiana_projections.csv", "row 1", "filename"),
    ),
    Case(
        "prepare open-i",
        "root is a file",
        _with(
            lambda d: write_text(d / "open-i", "x"), ["prepare", "open-i", "--root", "open-i", "--out", "out/s.jsonl"]
        ),
        ("open-i",),
    ),
    Case(
        "prepare open-i",
        "output is a folder",
        _with(
            lambda d: (_open_i(d), _folder(d / "out" / "s.jsonl")),
            ["prepare", "open-i", "--root", "open-i", "--out", "out/s.jsonl"],
        ),
        ("out/s.jsonl",),
    ),
    Case(
        "prepare open-i",
        "output folder read-only",
        _with(_open_i, ["prepare", "open-i", "--root", "open-i", "--out", "{ro}/s.jsonl"]),
        ("{ro}",),
    ),
    Case(
        "prepare ext-vqa",
        "NaN answer",
        _with(
            lambda d: _ext_vqa(d, answer=b"NaN"),
            ["prepare", "ext-vqa", "--root", "ext-vqa", "--images", "ext-vqa", "--out", "out/s.jsonl"],
        ),
        ("train.json", "line 10", "field '[0].answer'"),
    ),
    Case(
        "prepare ext-vqa",
        "not valid JSON",
        _with(
            lambda d: _ext_vqa(d, answer=b'["yes"'),
            ["prepare", "ext-vqa", "--root", "ext-vqa", "--images", "ext-vqa", "--out", "out/s.jsonl"],
        ),
        ("train.json", "line 11"),
    ),
    Case(
        "prepare ext-vqa",
        "invalid UTF-8",
        _with(
            lambda d: _ext_vqa(d, answer=b'["y\xffs"]'),
            ["prepare", "ext-vqa", "--root", "ext-vqa", "--images", "ext-vqa", "--out", "out/s.jsonl"],
        ),
        ("train.json", "line 10", "UTF-8"),
    ),
    Case(
        "prepare bundled",
        "output is a folder",
        _with(lambda d: _folder(d / "out" / "s.jsonl"), ["prepare", "bundled", "--out", "out/s.jsonl"]),
        ("out/s.jsonl",),
    ),
    Case(
        "prepare bundled",
        "output under a file",
        _with(lambda d: write_text(d / "f.txt", "x"), ["prepare", "bundled", "--out", "f.txt/s.jsonl"]),
        ("f.txt",),
    ),
    Case(
        "prepare bundled",
        "output folder read-only",
        _with(lambda d: None, ["prepare", "bundled", "--out", "{ro}/s.jsonl"]),
        ("{ro}",),
    ),
    Case(
        "prepare xraybench",
        "data file with NaN",
        _with(
            lambda d: jsonl(
                d / "xb.jsonl",
                [b'{"prompt": "Is there an effusion?", "answer": NaN, "image": "img.png", "group": "Ext-VQA"}'],
            ),
            ["prepare", "xraybench", "--root", "xb.jsonl", "--out", "out/s.jsonl"],
        ),
        ("xb.jsonl", "line 1", "field 'answer'"),
    ),
    Case(
        "prepare xraybench",
        "embedded images, a later row bad",
        _with(_xraybench_embedded, ["prepare", "xraybench", "--root", "xb.parquet", "--out", "out/s.jsonl"]),
        ("xb.parquet", "row 1", "empty answer"),
    ),
    Case(
        "prepare xraybench",
        "root missing",
        _with(lambda d: None, ["prepare", "xraybench", "--root", "./missing", "--out", "out/s.jsonl", "--offline"]),
        ("missing",),
    ),
    Case(
        "prepare xraybench",
        "output under a file",
        _with(
            lambda d: (
                png(d / "img.png"),
                jsonl(
                    d / "xb.jsonl",
                    [{"prompt": "Is there an effusion?", "answer": "yes", "image": "img.png", "group": "Ext-VQA"}],
                ),
                write_text(d / "f.txt", "x"),
            ),
            ["prepare", "xraybench", "--root", "xb.jsonl", "--images", ".", "--out", "f.txt/s.jsonl"],
        ),
        ("f.txt",),
    ),
    # models, training, cards
    Case(
        "tiny-model",
        "output is a file",
        _with(lambda d: write_text(d / "m", "x"), ["tiny-model", "--out", "m"]),
        ("m",),
    ),
    Case(
        "tiny-model",
        "output under a file",
        _with(lambda d: write_text(d / "f.txt", "x"), ["tiny-model", "--out", "f.txt/m"]),
        ("f.txt",),
    ),
    Case(
        "train",
        "recipe missing",
        _with(lambda d: None, ["train", "sft", "--recipe", "missing.yaml"]),
        ("missing.yaml",),
    ),
    Case(
        "train",
        "recipe not YAML",
        _with(lambda d: write_text(d / "r.yaml", "stage: [sft\n"), ["train", "sft", "--recipe", "r.yaml"]),
        ("r.yaml",),
    ),
    Case(
        "train",
        "recipe invalid UTF-8",
        _with(lambda d: write_text(d / "r.yaml", "", raw=b"stage: sft\xff\n"), ["train", "sft", "--recipe", "r.yaml"]),
        ("r.yaml",),
    ),
    Case(
        "train",
        "--set value not YAML",
        lambda d: ["train", "sft", "--recipe", str(ROOT / "recipes/tiny/sft.yaml"), "--set", "learning_rate=[1"],
        ("--set 'learning_rate=[1'", "not a YAML value"),
    ),
    Case(
        "model-card",
        "eval NaN",
        _model_card(b'{"ext-vqa/vqa": {"accuracy": NaN}}'),
        ("metrics.json", "line 1", "ext-vqa/vqa.accuracy"),
    ),
    Case("model-card", "eval invalid UTF-8", _model_card(b'{"a":\n "\xff"}'), ("metrics.json", "line 2", "UTF-8")),
    Case("model-card", "eval an array", _model_card(b"[1, 2]"), ("metrics.json",)),
    Case(
        "model-card",
        "model without run_info",
        _with(lambda d: _folder(d / "final"), ["model-card", "final"]),
        ("final",),
    ),
    # infer: the image and the outputs, before the model
    Case("infer", "image is not an image", _infer(image=b"not an image"), ("x.png",)),
    Case("infer", "image is a folder", _infer(folder=True), ("x.png",)),
    Case("infer", "image missing", lambda d: ["infer", "x.png", "--question", "?", "--model", NO_MODEL], ("x.png",)),
    Case("infer", "output is a folder", _infer(out="dir.json"), ("dir.json",)),
    Case("infer", "overlay under a file", _infer(overlay="f.txt/o.png"), ("f.txt",)),
    # serve: startup
    Case(
        "serve",
        "allowed image folder is a file",
        _with(lambda d: write_text(d / "f.txt", "x"), ["serve", "--allowed-image-dir", "f.txt", "--model", NO_MODEL]),
        ("f.txt",),
    ),
    # arena
    Case(
        "arena fit",
        "unknown winner",
        _with(
            lambda d: jsonl(d / "j.jsonl", [judgment_line(0), judgment_line(1, winner="x")]),
            ["arena", "fit", "j.jsonl", "--out", "out"],
        ),
        ("j.jsonl", "line 2", "field 'winner'"),
    ),
    Case(
        "arena fit",
        "blank line counted",
        _with(
            lambda d: jsonl(d / "j.jsonl", [judgment_line(0), b"", judgment_line(1, model_b="m1")]),
            ["arena", "fit", "j.jsonl", "--out", "out"],
        ),
        ("j.jsonl", "line 3"),
    ),
    # review
    Case(
        "review create",
        "image missing",
        _with(
            lambda d: (
                png(d / "img.png"),
                jsonl(d / "a.jsonl", [review_line(0), review_line(1, image="missing.png")]),
                jsonl(d / "b.jsonl", [review_line(0), review_line(1)]),
            ),
            [
                "review",
                "create",
                "--predictions",
                "a.jsonl",
                "b.jsonl",
                "--names",
                "A",
                "B",
                "--annotators",
                "alice:1",
                "--out",
                "out",
            ],
        ),
        ("a.jsonl", "line 2", "field 'image'"),
    ),
    Case(
        "review create",
        "image is not an image",
        _with(
            lambda d: (
                png(d / "img.png"),
                write_text(d / "bad.png", "not a PNG"),
                jsonl(d / "a.jsonl", [review_line(0), review_line(1, image="bad.png")]),
                jsonl(d / "b.jsonl", [review_line(0), review_line(1)]),
            ),
            [
                "review",
                "create",
                "--predictions",
                "a.jsonl",
                "b.jsonl",
                "--names",
                "A",
                "B",
                "--annotators",
                "alice:1",
                "--out",
                "out",
            ],
        ),
        ("a.jsonl", "line 2", "image"),
    ),
    Case(
        "review create",
        "annotators file not YAML",
        _with(
            lambda d: (
                png(d / "img.png"),
                jsonl(d / "a.jsonl", [review_line(0)]),
                jsonl(d / "b.jsonl", [review_line(0)]),
                write_text(d / "team.yaml", "groups: [a\n"),
            ),
            [
                "review",
                "create",
                "--predictions",
                "a.jsonl",
                "b.jsonl",
                "--names",
                "A",
                "B",
                "--annotators",
                "team.yaml",
                "--out",
                "out",
            ],
        ),
        ("team.yaml",),
    ),
    Case(
        "review create",
        "tokens file under a file",
        _with(
            lambda d: (
                png(d / "img.png"),
                jsonl(d / "a.jsonl", [review_line(0)]),
                jsonl(d / "b.jsonl", [review_line(0)]),
                write_text(d / "f.txt", "x"),
            ),
            [
                "review",
                "create",
                "--predictions",
                "a.jsonl",
                "b.jsonl",
                "--names",
                "A",
                "B",
                "--annotators",
                "alice:1",
                "--out",
                "out",
                "--tokens-out",
                "f.txt/tokens.txt",
            ],
        ),
        ("f.txt",),
    ),
    Case("review serve", "folder missing", lambda d: ["review", "serve", "--dir", "missing"], ("missing",)),
    Case(
        "review serve",
        "not a review set",
        _with(lambda d: _folder(d / "set"), ["review", "serve", "--dir", "set"]),
        ("set",),
    ),
    Case(
        "review results",
        "folder missing",
        lambda d: ["review", "results", "--dir", "missing", "--out", "out"],
        ("missing",),
    ),
    Case(
        "review results",
        "output is a file",
        _with(
            lambda d: (_review_set(d), write_text(d / "out", "x")),
            ["review", "results", "--dir", "set", "--out", "out"],
        ),
        ("out",),
    ),
    Case("review token", "folder missing", lambda d: ["review", "token", "--dir", "missing", "--admin"], ("missing",)),
    Case(
        "review export-labelstudio",
        "folder is a file",
        _with(
            lambda d: write_text(d / "set", "x"),
            ["review", "export-labelstudio", "--dir", "set", "--out", "out/tasks.json"],
        ),
        ("set",),
    ),
    Case(
        "review export-labelstudio",
        "output is a folder",
        _with(
            lambda d: (_review_set(d), _folder(d / "out" / "tasks.json")),
            ["review", "export-labelstudio", "--dir", "set", "--out", "out/tasks.json"],
        ),
        ("out/tasks.json",),
    ),
    Case(
        "review import-labelstudio",
        "NaN",
        _labelstudio_export(b'[{"id": 1, "data": {"review_sample_id": NaN}}]'),
        ("export.json", "line 1", "[0].data.review_sample_id"),
    ),
    Case(
        "review import-labelstudio", "not valid JSON", _labelstudio_export(b'[\n{"id": 1,\n'), ("export.json", "line")
    ),
    Case(
        "review import-labelstudio",
        "invalid UTF-8",
        _labelstudio_export(b'[\n{"id": "\xff"}]'),
        ("export.json", "line 2", "UTF-8"),
    ),
    Case("review import-labelstudio", "an object, not a list", _labelstudio_export(b'{"id": 1}'), ("export.json",)),
    Case("review import-labelstudio", "empty list", _labelstudio_export(b"[]"), ("export.json",)),
    Case(
        "review import-labelstudio",
        "export missing",
        _with(_review_set, ["review", "import-labelstudio", "--dir", "set", "--export", "missing.json"]),
        ("missing.json",),
    ),
    Case(
        "review serve",
        "port in use",
        lambda d: ["review", "serve", "--dir", str(_review_set(d)), "--port", _port_in_use()],
        ("127.0.0.1:",),
    ),
    Case(
        "serve",
        "port in use",
        lambda d: ["serve", "--port", _port_in_use(), "--model", NO_MODEL],
        ("127.0.0.1:",),
    ),
    # the other converters: their first CSV, and their folder
    Case(
        "prepare mimic-cxr",
        "CSV invalid UTF-8",
        _source_csv("mimic-cxr", "mimic-cxr-2.0.0-split.csv", "mimic-cxr-2.0.0-metadata.csv"),
        ("mimic-cxr-2.0.0-split.csv", "line 1", "UTF-8"),
    ),
    Case(
        "prepare ms-cxr",
        "CSV invalid UTF-8",
        _source_csv("ms-cxr", "MS_CXR_Local_Alignment_v1.1.0.csv"),
        ("MS_CXR_Local_Alignment_v1.1.0.csv", "line 1", "UTF-8"),
    ),
    Case(
        "prepare cxr-vqa",
        "CSV invalid UTF-8",
        _source_csv("cxr-vqa", "medical-cxr-vqa-questions.csv"),
        ("medical-cxr-vqa-questions.csv", "line 1", "UTF-8"),
    ),
    *(
        Case(
            f"prepare {source}",
            "root missing",
            lambda d, s=source: ["prepare", s, "--root", s, "--out", "o.jsonl"],
            (source,),
        )
        for source in ("mimic-cxr", "open-i", "ms-cxr", "ext-vqa", "cxr-vqa")
    ),
    # demo
    Case(
        "demo",
        "output is a file",
        _with(lambda d: write_text(d / "out", "x"), ["demo", "--out", "out", "--base-model", NO_MODEL, "--quick"]),
        ("out",),
    ),
    Case(
        "demo",
        "recipes missing",
        _with(lambda d: None, ["demo", "--out", "out", "--recipes", "missing", "--base-model", NO_MODEL, "--quick"]),
        ("missing",),
    ),
    # stats
    Case(
        "stats",
        "figure under a file",
        _with(
            lambda d: (jsonl(d / "s.jsonl", [sample(0)]), write_text(d / "f.txt", "x")),
            ["stats", "s.jsonl", "--figure", "f.txt/fig.png"],
        ),
        ("f.txt",),
    ),
]

CASES = [case for c in JSONL_COMMANDS for case in _generic(c)] + SPECIFIC


# --- running a case -------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    rc: int | None  # None: an exception escaped main (a traceback)
    stderr: str
    exception: BaseException | None = None
    left: list[str] = field(default_factory=list)  # what the run added or changed in the folder


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder``, hidden ones too: a file's (size, mtime), a folder's presence."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames:
            out[str((Path(dirpath) / name).relative_to(folder)) + "/"] = (0, 0)
        for name in filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            out[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


def read_only_folder(d: Path) -> Path | None:
    """A folder this process cannot write to: a mode-555 folder, or for root (whom modes do not stop) a path under
    /sys/fs, where no one may create anything. None when neither stops a write here."""
    candidates = [d.parent / f"{d.name}-ro", Path("/sys/fs/deepmedix-bad-input")]
    candidates[0].mkdir(exist_ok=True)
    candidates[0].chmod(0o555)
    for folder in candidates:
        try:
            (folder / "probe").mkdir(parents=True)
        except OSError:
            return folder
        shutil.rmtree(folder / "probe")
    return None


def run_case(case: Case, d: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Outcome:
    monkeypatch.chdir(d)
    monkeypatch.setenv("DEEPMEDIX_CACHE", str(d.parent / f"{d.name}-cache"))  # the label cache, outside the folder
    for module, name in (("uvicorn", "run"), ("deepmedix.inference.server", "serve")):  # a server must never start
        monkeypatch.setattr(f"{module}.{name}", _no_server, raising=False)
    ro = read_only_folder(d)
    argv = case.build(d)
    if any("{ro}" in a for a in argv):
        if ro is None:
            pytest.skip("no read-only folder here (every folder is writable to this process)")
        argv = [a.replace("{ro}", str(ro)) for a in argv]
    before = snapshot(d)
    capsys.readouterr()
    try:
        rc: int | None = cli.main(argv)
    except SystemExit as e:  # argparse
        rc = int(e.code or 0)
    except BaseException as e:  # noqa: BLE001 — a traceback is what the case reports
        return Outcome(None, capsys.readouterr().err, e)
    after = snapshot(d)
    left = sorted(p for p in after if before.get(p) != after[p]) + sorted(p for p in before if p not in after)
    return Outcome(rc, capsys.readouterr().err, left=left)


def _no_server(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("a server was started on bad input")


def expected_parts(case: Case, d: Path) -> list[str]:
    ro = read_only_folder(d)
    return [part.replace("{ro}", str(ro)) for part in case.expect]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, capsys, monkeypatch, caplog) -> None:
    d = tmp_path / "work"
    d.mkdir()
    try:
        outcome = run_case(case, d, capsys, monkeypatch)
    finally:
        while LISTENERS:
            LISTENERS.pop().close()
    assert outcome.exception is None, f"traceback: {type(outcome.exception).__name__}: {outcome.exception}"
    command = case.command.split()[0]
    lines = outcome.stderr.strip().splitlines()
    if case.accepted:
        if case.loads_model:  # the input was read and checked; then the model (absent) stopped it
            assert outcome.rc == 1 and MODEL_ERROR in lines[-1], outcome.stderr
        else:
            assert outcome.rc == 0, outcome.stderr
        for warning in case.expect:  # logged warnings go to stderr on the command line, to caplog here
            assert warning in outcome.stderr + caplog.text, outcome.stderr + caplog.text
        return
    assert outcome.rc == 1, f"exit {outcome.rc}; stderr: {outcome.stderr}"
    assert "Traceback" not in outcome.stderr
    errors = [line for line in lines if line.startswith(f"deepmedix {command}: error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], f"not one error line at the end: {outcome.stderr}"
    for part in expected_parts(case, d):
        assert part in errors[0], f"{part!r} not in: {errors[0]}"
    assert MODEL_ERROR not in errors[0], "the model was loaded before the input was checked"
    assert outcome.left == [], f"left behind (or changed): {outcome.left}"
