"""The options of ``deepmedix eval`` and ``deepmedix bench``: each default, help text and check written once.

The command line builds its flags from these dataclasses (``deepmedix.options``), and the Python API takes them,
so both refuse the same values. Kept free of the scorers' imports so that building the command line stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deepmedix.errors import OptionError


@dataclass(frozen=True)
class EvalOptions:
    """Which models score the reports, where their labels are kept, and what else is computed."""

    chexbert: Path | None = field(
        default=None, metadata={"help": "CheXbert checkpoint (chexbert.pth); without it F1-CheXbert is reported absent"}
    )
    chexbert_tokenizer: Path | None = field(
        default=None,
        metadata={
            "help": "local bert-base-uncased folder (vocab.txt [+ config.json]); default: the checkpoint's folder"
        },
    )
    chexbert_min_vocab: int = field(
        default=30000, metadata={"help": "refuse a tokenizer with a smaller vocabulary (a placeholder); default 30000"}
    )
    chexbert_batch_size: int | None = field(
        default=None, metadata={"help": "reports per CheXbert forward (default 16 on a CPU, 64 on a GPU)"}
    )
    radgraph: Path | None = field(
        default=None,
        metadata={"help": "RadGraph model folder (config.json, vocabulary/, weights.th); needs --radgraph-python"},
    )
    radgraph_python: Path | None = field(
        default=None, metadata={"help": "python of a separate virtualenv with radgraph 0.1.x (transformers<5)"}
    )
    radgraph_model_type: str = field(
        default="radgraph", metadata={"help": "radgraph | radgraph-xl | modern-radgraph-xl"}
    )
    radgraph_base_model: Path | None = field(
        default=None,
        metadata={"help": "local folder of the transformer RadGraph's config names (instead of a hub id)"},
    )
    iou_threshold: float = field(default=0.5, metadata={"help": "box match threshold for grounding (0.5)"})
    meteor: bool = field(default=True, metadata={"help": "compute METEOR (--no-meteor: skip it, no Java)"})
    cache_dir: Path | None = field(
        default=None,
        metadata={
            "help": "where CheXbert labels and RadGraph annotations are kept per text, so each text is labelled "
            "once per model (default: $DEEPMEDIX_CACHE or ~/.cache/deepmedix)"
        },
    )
    cache: bool = field(
        default=True, metadata={"help": "keep labels in the store (--no-cache: label every text afresh, keep nothing)"}
    )
    bootstrap_resamples: int = field(
        default=1000,
        metadata={"help": "bootstrap resamples for the 95%% interval of every metric (0: no intervals); default 1000"},
    )
    ar_trials: int = field(
        default=10000,
        metadata={"help": "approximate-randomisation trials of the paired test of --compare; default 10000"},
    )
    bootstrap_seed: int = field(
        default=12345, metadata={"help": "seed of the bootstrap and of the paired test of --compare; default 12345"}
    )
    rules: bool = field(default=True, metadata={"skip": True})  # F1-CheXpert (rules): always on the command line
    figures: bool = field(default=True, metadata={"skip": True})  # the PNG figures: always on the command line

    def __post_init__(self) -> None:
        if self.radgraph is not None and self.radgraph_python is None:
            raise OptionError(
                "--radgraph needs --radgraph-python (the python of a virtualenv with radgraph, transformers<5)"
            )
        if self.chexbert_batch_size is not None and self.chexbert_batch_size < 1:
            raise OptionError(f"--chexbert-batch-size must be at least 1, got {self.chexbert_batch_size}")
        if not 0 < self.iou_threshold <= 1:
            raise OptionError(f"--iou-threshold must be in (0, 1], got {self.iou_threshold}")
        if self.bootstrap_resamples < 0:
            raise OptionError(f"--bootstrap-resamples must be 0 or more, got {self.bootstrap_resamples}")
        if self.ar_trials < 1:
            raise OptionError(f"--ar-trials must be at least 1, got {self.ar_trials}")


@dataclass(frozen=True)
class BenchOptions:
    """How ``deepmedix bench`` predicts, beside the model and its backend (``inference.options.BackendOptions``)."""

    adapter: str | None = field(
        default=None, metadata={"help": "force an adapter (see docs/evaluation.md); default: from --model"}
    )
    batch_size: int = field(default=4, metadata={"help": "samples per generation batch"})
    limit: int | None = field(default=None, metadata={"help": "only the first N samples"})

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise OptionError(f"--batch-size must be at least 1, got {self.batch_size}")
