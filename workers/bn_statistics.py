"""BatchNorm statistics re-estimated on data, the weights untouched (random's `bn_statistics`,
contract.methods.RandomConfig): a random trunk is probed in eval mode, with whatever running
statistics its BN layers hold, while a trained trunk's come from the data it trained on, so
"beats random" may be the statistics alone. Re-estimating them puts the random trunk on the
same footing. As "precise BN" does: forward passes in train mode with momentum None (PyTorch's
cumulative average: each batch's mean and unbiased variance count once), no gradient.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import nn

BATCH = 256  # samples per forward pass; the batches differ by at most one sample (`batches`)


def batches(samples: int) -> Iterator[np.ndarray]:
    """Indices 0..samples-1 in ceil(samples / BATCH) consecutive batches as equal as can be,
    so the cumulative average weighs every sample about equally."""
    yield from np.array_split(np.arange(samples), math.ceil(samples / BATCH))


@torch.no_grad()
def reestimate(trunk: nn.Module, inputs: Iterable[torch.Tensor]) -> int:
    """Every BatchNorm's running mean and variance replaced by the average of the batches'
    statistics over `inputs` ((B, 3, S, S) batches on the trunk's device); the trunk is left in
    eval mode with its momenta as they were. Returns the number of samples seen.

    Raises:
        ValueError: `inputs` gave no batch (the statistics would be left reset)."""
    norms = [m for m in trunk.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    trunk.train()
    seen = 0
    for x in inputs:
        trunk(x)
        seen += len(x)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    trunk.eval()
    if not seen:
        raise ValueError("no samples to estimate the BatchNorm statistics on")
    return seen
