"""``deepmedix coldstart synthesize``."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("coldstart", help="stage 2 data: a teacher writes grounded reasoning; a filter keeps the valid")
    csub = p.add_subparsers(dest="coldstart_command", metavar="ACTION", required=True)
    s = csub.add_parser("synthesize", help="run a teacher over samples, filter, write stage-2 training data")
    s.add_argument("--data", required=True, help="samples JSONL (answers are the ground truth)")
    s.add_argument("--out", required=True, help="stage-2 samples JSONL to write")
    s.add_argument(
        "--teacher",
        default="offline",
        help="'offline' (template teacher, no model) or the base URL of an OpenAI-compatible endpoint",
    )
    s.add_argument("--teacher-model", default="gpt-4.1", help="model name at the teacher endpoint")
    s.add_argument("--verifier", default=None, help="base URL of an OpenAI-compatible verifier endpoint (optional)")
    s.add_argument("--verifier-model", default="Qwen/Qwen2.5-VL-32B-Instruct")
    s.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    s.add_argument("--cache", default=None, help="reply cache (SQLite); default: beside --out")
    s.add_argument("--concurrency", type=int, default=4)
    s.add_argument("--rpm", type=float, default=None, help="at most this many requests per minute")
    s.add_argument("--limit", type=int, default=None)
    s.add_argument("--model-family", default="qwen2.5-vl", help="box frame of the student (qwen2.5-vl, qwen3-vl)")
    s.add_argument("--max-pixels", type=int, default=None, help="student's max pixels (default 512*512)")
    s.add_argument("--allow-no-box", action="store_true", help="keep reasoning that cites no region")
    s.set_defaults(func=_synthesize)


def _synthesize(args: argparse.Namespace) -> int:
    from deepmedix.data.frame import frame_for
    from deepmedix.endpoints import ChatEndpoint, EndpointConfig
    from deepmedix.training.coldstart.synthesize import synthesize
    from deepmedix.training.coldstart.teachers import EndpointTeacher, EndpointVerifier, TemplateTeacher

    frame = frame_for(args.model_family, max_pixels=args.max_pixels)
    if args.teacher == "offline":
        teacher = TemplateTeacher()
    else:
        teacher = EndpointTeacher(
            ChatEndpoint(
                EndpointConfig(
                    base_url=args.teacher,
                    model=args.teacher_model,
                    api_key_env=args.api_key_env,
                    max_concurrency=args.concurrency,
                    requests_per_minute=args.rpm,
                    max_tokens=2048,
                )
            )
        )
    verifier = None
    if args.verifier:
        verifier = EndpointVerifier(
            ChatEndpoint(
                EndpointConfig(
                    base_url=args.verifier,
                    model=args.verifier_model,
                    api_key_env=args.api_key_env,
                    max_concurrency=args.concurrency,
                    requests_per_minute=args.rpm,
                    max_tokens=16,
                )
            )
        )
    summary = synthesize(
        args.data,
        args.out,
        teacher,
        frame=frame,
        verifier=verifier,
        cache_path=args.cache,
        limit=args.limit,
        require_box=not args.allow_no_box,
    )
    print(json.dumps(summary.to_dict(), indent=2))
    return 0
