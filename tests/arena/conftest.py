"""Helpers for the arena tests: prediction files and a fake judge that reads the reports it is shown."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

REPORTS = re.compile(r"Report A:\n(?P<a>.*?)\n\nReport B:\n(?P<b>.*?)\n\n", re.S)
QUALITY = re.compile(r"quality (\d+)")


def user_text(body: dict[str, Any]) -> str:
    """The judge prompt's text in a chat request (the first user message; a retry appends more)."""
    user = next(m for m in body["messages"] if m["role"] == "user")
    content = user["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if part.get("type") == "text")
    return content


def shown_reports(body: dict[str, Any]) -> tuple[str, str]:
    match = REPORTS.search(user_text(body))
    assert match, "judge prompt lacks 'Report A:' / 'Report B:' sections"
    return match["a"], match["b"]


def quality_verdict(body: dict[str, Any]) -> str:
    """A judge that reads 'quality N' in each report: the higher wins, equal is a tie."""
    a, b = shown_reports(body)
    qa, qb = int(QUALITY.search(a)[1]), int(QUALITY.search(b)[1])  # type: ignore[index]
    verdict = "A" if qa > qb else "B" if qb > qa else "tie"
    return json.dumps({"verdict": verdict, "reason": f"quality {qa} vs {qb}"})


def write_predictions(
    path: Path, quality: int, n: int = 6, task: str = "report_findings", skip: set[int] | None = None
) -> Path:
    """An inference prediction file for one model whose reports carry 'quality N'."""
    rows = []
    for i in range(n):
        if skip and i in skip:  # the model has no line for this sample
            continue
        rows.append(
            {
                "id": f"s{i}",
                "split": "test",
                "source": "open-i",
                "task": task,
                "benchmark": "open-i/findings",
                "model": path.stem,
                "prompt": "Describe the findings.",
                "image": f"img{i}.png",
                "completion": "",
                "prediction": f"Report {i}: quality {quality}. No pneumothorax.",
                "format_valid": True,
                "steps": [],
                "reference": f"Reference {i}: heart size normal, no effusion.",
                "answer_type": "open",
            }
        )
    rows.append({"id": "vqa0", "task": "vqa", "prediction": "yes", "reference": "no"})  # not a report: skipped
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
