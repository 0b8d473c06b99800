"""``deepmedix review``: expert review of two models' reasoning (create, serve, results, Label Studio interop)."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_PORT = 8765


def register(subparsers: argparse._SubParsersAction) -> None:
    review = subparsers.add_parser(
        "review",
        help="expert review of reasoning: a browser app for physicians and the agreement statistics (Table 2)",
        description="Blinded pairwise review of two models' grounded reasoning by physicians in groups.",
    )
    sub = review.add_subparsers(dest="review_command", metavar="SUBCOMMAND")

    p = sub.add_parser("create", help="build a review set (SQLite + images) from two prediction files")
    p.add_argument("--predictions", nargs=2, required=True, metavar=("A.jsonl", "B.jsonl"), type=Path)
    p.add_argument("--names", nargs=2, required=True, metavar=("A", "B"), help="the two models' names (un-blinded)")
    p.add_argument("--samples", type=int, default=None, help="how many shared samples to draw (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed for the sample draw and the left/right blinding")
    p.add_argument(
        "--annotators",
        required=True,
        help='"alice:1,bob:1,carol:2,dan:2" (NAME:GROUP) or a YAML file ({groups: {1: [alice, bob], 2: [...]}})',
    )
    p.add_argument(
        "--within-group",
        choices=["all", "split"],
        default="all",
        help="all: every annotator rates all samples (default, as the paper: each group rates every sample); "
        "split: a group's annotators share its samples, each sample rated once per group",
    )
    p.add_argument("--link-images", action="store_true", help="symlink images instead of copying them")
    p.add_argument("--out", required=True, type=Path, help="new folder for the review set")
    p.add_argument("--base-url", default=f"http://127.0.0.1:{DEFAULT_PORT}", help="where `review serve` will run")
    p.add_argument("--tokens-out", type=Path, default=None, help="also write the links to this file (mode 600)")
    p.set_defaults(func=_create)

    p = sub.add_parser("serve", help="run the review web app")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument(
        "--public-origin",
        action="append",
        default=[],
        metavar="URL",
        help="the origin annotators reach the app under through a reverse proxy, e.g. https://review.example.org "
        "(repeatable): state-changing requests from it are accepted besides the app's own address; "
        "https also marks the session cookie Secure",
    )
    p.set_defaults(func=_serve)

    p = sub.add_parser("results", help="Table 2 (per group, averaged, agreement) as CSV, Markdown, figure; raw ratings")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=_results)

    p = sub.add_parser("token", help="issue a new personal link for an annotator (or the admin); the old one stops")
    p.add_argument("--dir", required=True, type=Path)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--annotator")
    who.add_argument("--admin", action="store_true")
    p.add_argument("--base-url", default=f"http://127.0.0.1:{DEFAULT_PORT}")
    p.set_defaults(func=_token)

    p = sub.add_parser("export-labelstudio", help="Label Studio tasks (+ labelling config XML) for this review set")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="tasks JSON; the config is written beside it (.xml)")
    p.add_argument(
        "--image-url-prefix",
        default="/data/local-files/?d=",
        help="prefix for task image URLs, followed by the image's path inside the review folder "
        "(default suits Label Studio local-files storage rooted at the review folder's parent)",
    )
    p.set_defaults(func=_export_ls)

    p = sub.add_parser("import-labelstudio", help="bring a Label Studio JSON export back into the review store")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--export", required=True, type=Path, help="Label Studio export (JSON)")
    p.add_argument(
        "--users",
        default=None,
        help='map Label Studio users to annotators: "7:alice,8:bob" or "a@x.org:alice" (default: an email whose '
        "local part, or a user id equal to, an annotator's name)",
    )
    p.set_defaults(func=_import_ls)

    review.set_defaults(func=lambda args: (review.print_help(), 2)[1])


def _links(base_url: str, tokens: dict[str, str], admin: str | None) -> list[str]:
    base = base_url.rstrip("/")
    lines = [f"{name}: {base}/t/{tok}" for name, tok in tokens.items()]
    if admin:
        lines.append(f"admin (progress): {base}/t/{admin}")
    return lines


def _create(args: argparse.Namespace) -> int:
    from deepmedix.annotation.create import create_review, parse_annotators

    if args.tokens_out:  # the links are shown once: their file must be writable before the set is made
        from deepmedix.io import check_output

        check_output(args.tokens_out)
    made = create_review(
        args.predictions,
        args.names,
        args.out,
        parse_annotators(args.annotators),
        n_samples=args.samples,
        seed=args.seed,
        within_group=args.within_group,
        link_images=args.link_images,
    )
    lines = _links(args.base_url, made.tokens, made.admin_token)
    print(f"review set: {made.dir} ({made.n_samples} samples, {len(made.tokens)} annotators)")
    print("personal links (shown once; only hashes are stored — `deepmedix review token` issues new ones):")
    for line in lines:
        print("  " + line)
    if args.tokens_out:
        from deepmedix.io import atomic_write_text

        atomic_write_text(args.tokens_out, "\n".join(lines) + "\n", permissions=0o600)  # private from the first byte
    base = urlparse(args.base_url)
    if base.scheme == "https":  # a TLS reverse proxy in front: the app must accept requests from its origin
        serve_args = f" --public-origin https://{base.netloc}"
    else:
        serve_args = f" --port {base.port}" if base.port and base.port != DEFAULT_PORT else ""
    print(f"start the app: deepmedix review serve --dir {made.dir}{serve_args}")
    return 0


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from deepmedix.annotation.security import parse_origin
    from deepmedix.annotation.server import create_app
    from deepmedix.options import check_port

    public_origins = [parse_origin(o) for o in args.public_origin]
    app = create_app(args.dir, public_origins=public_origins)
    check_port(args.host, args.port)
    if not _is_loopback(args.host):
        print(
            f"warning: serving on {args.host}: other machines can reach the review (put HTTPS in front of it: "
            "docs/security.md)",
            file=sys.stderr,
        )
    print(f"review app on http://{args.host}:{args.port}/  (annotators open their personal links)")
    for origin in public_origins:
        print(f"  also accepted as this app's address: {origin}")
    # uvicorn trusts X-Forwarded-Proto/-For only from 127.0.0.1 (its default): a proxy on this machine.
    # log_config=None: the command's own logging stays as it is (uvicorn's would replace every handler); no access
    # log, since personal links carry their token in the URL.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", log_config=None, access_log=False)
    return 0


def _results(args: argparse.Namespace) -> int:
    from deepmedix.annotation.results import write_results

    paths = write_results(args.dir, args.out)
    print((args.out / "table2.md").read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _token(args: argparse.Namespace) -> int:
    from deepmedix.annotation.store import ReviewStore

    with ReviewStore(args.dir) as store:
        token = store.rotate_token(None if args.admin else args.annotator)
    name = "admin" if args.admin else args.annotator
    print(f"{name}: {args.base_url.rstrip('/')}/t/{token}")
    return 0


def _export_ls(args: argparse.Namespace) -> int:
    from deepmedix.annotation.labelstudio import export_labelstudio

    export = export_labelstudio(args.dir, args.out, image_url_prefix=args.image_url_prefix)
    print(f"wrote {export.tasks} (tasks), {export.config} (labelling config) and {export.project} (project settings)")
    return 0


def _import_ls(args: argparse.Namespace) -> int:
    from deepmedix.annotation.labelstudio import import_labelstudio, parse_user_map

    summary = import_labelstudio(args.dir, args.export, parse_user_map(args.users))
    print(
        f"imported {summary['ratings']} ratings from {summary['annotations']} annotations "
        f"({summary['skipped']} skipped: cancelled or empty)"
    )
    return 0
