"""On a CPU the demo trains on one torch thread while the base model's predictions run in a worker process beside
it; when they finish, training takes their core back."""

from __future__ import annotations

from concurrent.futures import Future

import torch

from deepmedix.demo.pipeline import _threads_when_done


def test_training_takes_the_core_back_once_the_predictions_beside_it_are_done():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        job: Future = Future()
        callback = _threads_when_done(job, 2)
        callback.on_step_begin(None, None, None)
        assert torch.get_num_threads() == 1  # still sharing the machine
        job.set_result("predictions/base.jsonl")
        callback.on_step_begin(None, None, None)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
