"""``deepmedix infer``, ``deepmedix predict`` and ``deepmedix serve``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from deepmedix.inference.options import BackendOptions, ServeOptions
from deepmedix.options import add_dataclass_arguments, check_port, dataclass_from_args


def _add_backend_options(p: argparse.ArgumentParser, no_reasoning: bool = True) -> None:
    add_dataclass_arguments(p, BackendOptions)
    if no_reasoning:
        p.add_argument(
            "--no-reasoning", action="store_true", help="ask with the question alone (no grounded-reasoning prompt)"
        )


def _backend_options(args: argparse.Namespace) -> BackendOptions:
    from deepmedix.errors import OptionError

    options = dataclass_from_args(BackendOptions, args)
    if getattr(args, "no_reasoning", False) and options.prompt_template is not None:
        raise OptionError(
            "--prompt-template is the grounded-reasoning prompt and --no-reasoning asks without it: give one of them"
        )
    return options


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("infer", help="answer one chest X-ray with grounded reasoning (JSON; optional overlay)")
    p.add_argument("image", help="PNG, JPEG or DICOM file")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--question", help="a question about the image (VQA)")
    group.add_argument("--task", choices=("findings", "impression"), help="write a report section")
    p.add_argument("--overlay", type=Path, default=None, help="write the image with every step's boxes drawn (PNG)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON to this file")
    _add_backend_options(p)
    p.set_defaults(func=_infer)

    p = subparsers.add_parser("predict", help="batch prediction over a samples JSONL (resumable)")
    p.add_argument("--data", required=True, type=Path, help="samples JSONL")
    p.add_argument("--out", required=True, type=Path, help="prediction JSONL (appended; rerun to resume)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--limit", type=int, default=None, help="only the first N samples")
    _add_backend_options(p)
    p.set_defaults(func=_predict)

    p = subparsers.add_parser(
        "serve", help="model server: HTTP API and viewer for grounded answers, and the OpenAI chat protocol"
    )
    add_dataclass_arguments(p, ServeOptions)
    _add_backend_options(p, no_reasoning=False)  # each request says whether it asks for reasoning
    p.set_defaults(func=_serve)


def _infer(args: argparse.Namespace) -> int:
    from deepmedix.inference.api import build_answerer, resolve_prompt
    from deepmedix.inference.images import load_image
    from deepmedix.inference.overlay import save_overlay
    from deepmedix.io import atomic_write_json, check_output

    options = _backend_options(args)
    resolve_prompt(args.task, args.question)  # the question, the image and the outputs before a model is loaded
    image_path = Path(args.image)
    for output in (args.out, args.overlay):
        if output is not None:
            check_output(output)
    loaded = load_image(image_path)
    answerer = build_answerer(options)  # the template is checked before the model is loaded
    try:
        result = answerer.answer(loaded, question=args.question, task=args.task, reasoning=not args.no_reasoning)
    finally:
        answerer.backend.close()
    body = {"image": str(image_path), **result.to_dict()}
    if args.overlay:
        save_overlay(loaded.image, result.steps, args.overlay)
        body["overlay"] = str(args.overlay)
    if args.out:
        atomic_write_json(args.out, body)
    json.dump(body, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from deepmedix.inference.predict import predict_file, prediction_summary

    out = predict_file(
        _backend_options(args),
        args.data,
        args.out,
        batch_size=args.batch_size,
        limit=args.limit,
        reasoning=not args.no_reasoning,
    )
    counts = prediction_summary(out)
    print(
        f"{out}: {counts['predictions']} predictions, {counts['truncated']} truncated "
        "(cut off at their budget of new tokens; --max-new-tokens raises it)"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from deepmedix.inference.api import build_answerer
    from deepmedix.inference.server import create_app, serve

    options = dataclass_from_args(ServeOptions, args)
    if options.samples is not None:  # a bad file is reported before the model is loaded
        from deepmedix.data.schema import check_sample_images, load_numbered_samples
        from deepmedix.errors import DataError

        numbered = load_numbered_samples(options.samples)
        if not numbered:
            raise DataError(f"{options.samples}: no samples to show (the file is empty)")
        check_sample_images(options.samples, numbered)
    for folder in options.allowed_image_dir:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: --allowed-image-dir is not a folder")
    if options.server_api_key_env is not None:
        from deepmedix.inference.server import api_key_from_env

        api_key_from_env(options)  # a missing key is reported before the model is loaded
    check_port(options.host, options.port)  # a port in use is reported before the model is loaded
    answerer = build_answerer(_backend_options(args))  # the template is checked before the model is loaded
    backend = answerer.backend
    try:
        app = create_app(answerer, options)
        print(
            f"deepmedix serve: http://{options.host}:{options.port}/  (model {args.model}; "
            f"OpenAI API at http://{options.host}:{options.port}/v1)",
            file=sys.stderr,
        )
        serve(app, host=options.host, port=options.port, shutdown_timeout_s=options.shutdown_timeout_s)
    finally:
        backend.close()
    return 0
