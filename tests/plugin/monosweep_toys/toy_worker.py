"""A toy evaluation kind, worker side: the second of its two files, imported by the worker
that runs the job (the kind's `run`)."""

from __future__ import annotations

from pathlib import Path

import torch

from workers.models.alexnet import load_trunk


def weight_norms(job, checkpoint: Path, recorder) -> dict[str, float]:
    trunk = load_trunk(job.network, checkpoint)
    convs = [m for m in trunk.modules() if isinstance(m, torch.nn.Conv2d)][-5:]  # conv1..conv5
    scores = {f"conv{i}_norm": float(torch.linalg.vector_norm(m.weight, job.ord)) for i, m in enumerate(convs, 1)}
    recorder.metrics(scores, 0)
    return scores
