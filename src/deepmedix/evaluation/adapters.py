"""How to benchmark the paper's baselines: prompt style, how to read the answer, which loader.

Every model is asked through the same samples; what differs is whether it is asked for the grounded protocol
(``reasoning``), how its reply is turned into the answer that is scored (``answer``), an optional instruction that
replaces the report prompt (models trained on one fixed instruction), and how it is loaded:

* ``transformers`` — in process, through ``deepmedix.models.load_model_and_processor`` (Qwen2.5-VL /
  Qwen3-VL classes, anything else through ``AutoModelForImageTextToText``);
* ``served`` — the model needs its authors' own code (a LLaVA fork, ``trust_remote_code``): serve it with that code
  behind an OpenAI-compatible endpoint and run ``deepmedix bench --backend openai`` against it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deepmedix.errors import OptionError
from deepmedix.protocol import final_answer


@dataclass(frozen=True)
class Adapter:
    name: str
    patterns: tuple[str, ...]  # lower-case substrings of a hub id / path that select this adapter
    reasoning: bool  # ask for <think> … [boxes] … </think> \boxed{answer}
    answer: str  # "protocol": last \boxed{} (reasoning dropped); "plain": the reply, section labels stripped
    loader: str  # "transformers" | "served"
    report_prompts: tuple[tuple[str, str], ...] = ()  # (task, instruction) overrides
    notes: str = ""

    def read_answer(self, completion: str) -> str:
        text = final_answer(completion or "")
        if self.answer == "plain":
            text = _LABEL.sub("", text.replace("</s>", "").replace("<|im_end|>", "")).strip().strip("*").strip()
        return text

    def prompt_for(self, task: str) -> str | None:
        return dict(self.report_prompts).get(task)


# A leading "Findings:", "**Impression:**", "Answer:" that plain models put before their text.
_LABEL = re.compile(r"^\s*\**\s*(findings|impression|answer|report)\s*:?\s*\**\s*:?\s*", re.IGNORECASE)

ADAPTERS: tuple[Adapter, ...] = (
    Adapter(
        "deepmedix",
        ("tiny", "deepmedix"),
        reasoning=True,
        answer="protocol",
        loader="transformers",
        notes="DeepMedix / DeepMedix-R1 and the tiny test model: the grounded protocol, boxes in the Qwen2.5-VL "
        "input frame.",
    ),
    Adapter(
        "qwen2.5-vl-think",
        ("qwen2.5-vl-think",),
        reasoning=True,
        answer="protocol",
        loader="transformers",
        notes='Qwen2.5-VL asked with the thinking prompt — the paper\'s "Qwen2.5-VL-7B (think)" row. Select '
        "with --adapter qwen2.5-vl-think.",
    ),
    Adapter(
        "qwen2.5-vl",
        ("qwen2.5-vl", "qwen2_5_vl", "qwen2-vl", "qwen3-vl"),
        reasoning=False,
        answer="plain",
        loader="transformers",
        notes="Qwen2.5-VL-7B/32B-Instruct, plain prompt, reply read as the answer.",
    ),
    Adapter(
        "huatuogpt-vision-qwen2.5vl",
        ("huatuogpt-vision-7b-qwen2.5vl",),
        reasoning=False,
        answer="plain",
        loader="transformers",
        notes="HuatuoGPT-Vision on a Qwen2.5-VL base loads like Qwen2.5-VL.",
    ),
    Adapter(
        "medgemma",
        ("medgemma",),
        reasoning=False,
        answer="plain",
        loader="transformers",
        notes="google/medgemma-4b-it (Gemma 3): AutoModelForImageTextToText, plain prompt; its replies often "
        "start with a bold section label, which is stripped.",
    ),
    Adapter(
        "chexagent",
        ("chexagent",),
        reasoning=False,
        answer="plain",
        loader="served",
        report_prompts=(
            ("report_findings", "Write an example findings section for the CXR"),
            ("report_impression", "Write an example impression section for the CXR"),
        ),
        notes="StanfordAIMI/CheXagent-2-3b needs trust_remote_code; serve it with its own code. Its report "
        "instructions are the ones in its model card.",
    ),
    Adapter(
        "llava-rad",
        ("llava-rad", "llava_rad", "llavarad"),
        reasoning=False,
        answer="plain",
        loader="served",
        report_prompts=(("report_findings", "Describe the findings of the chest x-ray."),),
        notes="microsoft/llava-rad runs on its authors' LLaVA fork; serve it. Trained to write findings from "
        "one fixed instruction.",
    ),
    Adapter(
        "huatuogpt-vision",
        ("huatuogpt-vision",),
        reasoning=False,
        answer="plain",
        loader="served",
        notes="FreedomIntelligence/HuatuoGPT-Vision-7B/34B (LLaVA architecture, own code): serve it.",
    ),
)


def adapter_by_name(name: str) -> Adapter:
    for a in ADAPTERS:
        if a.name == name:
            return a
    raise OptionError(f"unknown adapter {name!r}; choose one of {', '.join(a.name for a in ADAPTERS)}")


def resolve_adapter(model: str, name: str | None = None) -> Adapter:
    """The adapter named, else the first whose pattern occurs in the model id; a model nobody knows is asked for
    the grounded protocol (the project's own checkpoints)."""
    if name:
        return adapter_by_name(name)
    key = str(model).lower()
    for a in ADAPTERS:
        if any(p in key for p in a.patterns):
            return a
    return ADAPTERS[0]
