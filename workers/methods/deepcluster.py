"""DeepCluster: Caron, Bojanowski, Joulin, Douze, "Deep clustering for unsupervised learning of
visual features", ECCV 2018.

Every epoch: the network's fc7 features of the (clustered) mono samples' centre crops are
PCA-whitened and L2-normalised, k-means groups them into k clusters, and the cluster ids become
the labels of a classification epoch over the loader's views of samples drawn uniformly across
the clusters; the top layer is re-initialised for the new labels. Settings
(contract.methods.DeepClusterConfig): samples (d), epochs, batch_size, lr, schedule, momentum,
weight_decay, k, pca_dim, kmeans_iterations, cluster_samples (how many samples are clustered;
upstream clusters all of them), sobel, loader.
k-means is plain torch (Lloyd's algorithm on the job's device), as faiss is not required.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from workers.methods.base import Method
from workers.models.alexnet import AlexNet, pool5_shape

SPLIT_EPS = 1 / 1024  # faiss's relative perturbation when an empty cluster takes half of a full one


def pca_whiten(x: torch.Tensor, dim: int, eps: float = 1e-5) -> torch.Tensor:
    """(n, D) -> (n, dim): centred, projected on the top `dim` principal axes, each axis
    scaled to unit variance (faiss's PCAMatrix with eigen_power -0.5, as DeepCluster).

    Raises:
        ValueError: `dim` exceeds the feature size D.
    """
    if dim > x.shape[1]:
        raise ValueError(f"cannot keep {dim} principal axes of {x.shape[1]}-dim features")
    x = x.double()
    x = x - x.mean(0)
    values, vectors = torch.linalg.eigh(x.T @ x / max(len(x) - 1, 1))  # ascending order
    top = vectors[:, -dim:].flip(1)  # (D, dim), largest variance first
    return (x @ top / (values[-dim:].flip(0).clamp_min(0) + eps).sqrt()).float()


def kmeans_assign(x: torch.Tensor, centroids: torch.Tensor, chunk: int = 16384) -> torch.Tensor:
    """(n, d) points, (k, d) centroids -> (n,) index of each point's nearest centroid (L2).
    argmin |x - c|^2 = argmax (x.c - |c|^2 / 2); rows in chunks so n x k never sits in memory."""
    half_norms = (centroids * centroids).sum(1) / 2
    return torch.cat([(part @ centroids.T - half_norms).argmax(1) for part in x.split(chunk)])


def kmeans(
    x: torch.Tensor, k: int, iterations: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means: (n, d) points -> ((k, d) centroids, (n,) assignments). Starts from k
    distinct random points; an emptied cluster takes half of the largest one (as faiss does).

    Raises:
        ValueError: fewer points than clusters.
    """
    n = len(x)
    if k > n:
        raise ValueError(f"k-means with k = {k} needs at least k points, got {n}")
    start = torch.randperm(n, generator=generator)[:k].to(x.device)
    centroids = x[start].clone()
    for _ in range(iterations):
        assignments = kmeans_assign(x, centroids)
        counts = torch.bincount(assignments, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, assignments, x)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centroids)
        sign = torch.ones(x.shape[1], device=x.device)
        sign[1::2] = -1  # perturb alternate coordinates in opposite directions
        for empty in torch.nonzero(counts == 0).flatten().tolist():
            full = int(counts.argmax())
            centroids[empty] = centroids[full] * (1 + SPLIT_EPS * sign)
            centroids[full] = centroids[full] * (1 - SPLIT_EPS * sign)
            counts[empty] = counts[full] // 2
            counts[full] -= counts[empty]
    return centroids, kmeans_assign(x, centroids)


def uniform_cluster_sample(assignments: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """`total` positions into `assignments`, drawn uniformly over the non-empty clusters
    (DeepCluster's UnifLabelSampler): about total / (non-empty clusters) from each, with
    replacement only where a cluster is smaller than its share; shuffled."""
    clusters = np.unique(assignments)
    share = total // len(clusters) + 1
    picked = []
    for c in clusters:
        members = np.flatnonzero(assignments == c)
        picked.append(rng.choice(members, share, replace=len(members) < share))
    return rng.permutation(np.concatenate(picked))[:total]


class PseudoLabelled(Dataset):
    """Item j: (sample `indices[j]` of the mono dataset, its cluster id `labels[j]`)."""

    def __init__(self, dataset: Dataset, indices: torch.Tensor, labels: torch.Tensor):
        self.dataset, self.indices, self.labels = dataset, indices, labels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset[int(self.indices[j])], self.labels[j]


class DeepCluster(Method):
    def __init__(self, config, trunk: AlexNet, input_size: int, classes: int | None = None):
        super().__init__(config, trunk, input_size)
        c, h, w = pool5_shape(trunk, input_size)
        hidden = max(64, round(4096 * c / 256))  # AlexNet's fc6/fc7 shrunk with the trunk's width
        # Upstream's classifier; its last ReLU is left out of the features that are clustered.
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(c * h * w, hidden), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
        )
        for layer in self.classifier:
            if isinstance(layer, nn.Linear):  # upstream's models/alexnet.py _initialize_weights
                nn.init.normal_(layer.weight, 0, 0.01)
                nn.init.zeros_(layer.bias)
        self.top = nn.Linear(hidden, config.k)
        # The current epoch's pseudo-labels: kept in the resume state (get_extra_state), so a
        # resumed epoch trains on the same labels rather than re-clustering mid-epoch.
        self.clustered_epoch = -1
        self.indices = torch.zeros(0, dtype=torch.int64)
        self.labels = torch.zeros(0, dtype=torch.int64)
        self.non_empty = 0  # clusters that hold a sample, logged with the loss
        self.cluster_seconds = 0.0  # the latest clustering's time, logged with the loss: it grows with d

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """Upstream's two optimizers stepped together, as two groups of one: the trunk and
        fc6/fc7 with momentum, the top layer plain SGD (main.py builds it per epoch with lr and
        weight decay only), so a re-clustering leaves it no state to drop."""
        c = self.config
        top = set(self.top.parameters())
        body = [p for p in self.parameters() if p.requires_grad and p not in top]
        return [torch.optim.SGD(
            [{"params": body}, {"params": list(top), "momentum": 0.0, "nesterov": False}],
            lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay, nesterov=c.nesterov,
        )]

    def get_extra_state(self) -> dict[str, Any]:
        return {"epoch": self.clustered_epoch, "indices": self.indices, "labels": self.labels}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.clustered_epoch = state["epoch"]
        self.indices, self.labels = state["indices"].cpu(), state["labels"].cpu()
        self.non_empty = len(torch.unique(self.labels))

    @torch.no_grad()
    def features(self, dataset: Dataset, indices: np.ndarray, device: torch.device) -> torch.Tensor:
        """(n,) mono sample indices -> (n, hidden) fc7 features before its ReLU, in eval mode."""
        was_training = self.training
        self.eval()
        out = []
        for start in range(0, len(indices), self.config.batch_size):
            x = torch.stack([dataset[int(i)] for i in indices[start : start + self.config.batch_size]])
            out.append(self.classifier[:-1](self.trunk(x.to(device)).flatten(1)))
        self.train(was_training)
        return torch.cat(out)

    def on_epoch_start(self, epoch: int, dataset: Any, device: torch.device) -> Dataset:
        """Clusters the mono samples' centre crops (upstream: Resize(256) + CenterCrop(224),
        main.py l.122-123), then trains on the loader's view of the epoch (RandomResizedCrop +
        flip, clustering.py l.142-143)."""
        if epoch != self.clustered_epoch:
            self.recluster(epoch, dataset.centred(), device)
        return PseudoLabelled(dataset.at_epoch(epoch), self.indices, self.labels)

    def recluster(self, epoch: int, dataset: Dataset, device: torch.device) -> None:
        cfg, tick = self.config, time.perf_counter()
        # Drawn from the global stream (seeded with the job): reproducible, and resumable.
        rng = np.random.default_rng(int(torch.randint(2**62, ())))
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        n = len(dataset)  # type: ignore[arg-type]
        clustered = np.sort(rng.choice(n, cfg.cluster_samples, replace=False)) if cfg.cluster_samples else np.arange(n)
        feats = self.features(dataset, clustered, device)
        x = F.normalize(pca_whiten(feats, min(cfg.pca_dim, feats.shape[1])), dim=1)
        _, assignments = kmeans(x, cfg.k, cfg.kmeans_iterations, generator)
        picked = uniform_cluster_sample(assignments.cpu().numpy(), n, rng)
        self.indices = torch.from_numpy(clustered[picked])
        self.labels = assignments.cpu()[torch.from_numpy(picked)]
        self.clustered_epoch = epoch
        self.non_empty = len(torch.unique(assignments))
        # A new labelling: a new top layer (upstream: N(0, 0.01) weights, zero bias).
        nn.init.normal_(self.top.weight, 0, 0.01)
        nn.init.zeros_(self.top.bias)
        self.cluster_seconds = time.perf_counter() - tick

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = batch  # (B, 3, H, W), (B,) cluster ids
        logits = self.top(self.classifier(self.trunk(x).flatten(1)))  # (B, k)
        loss = F.cross_entropy(logits, y)
        accuracy = (logits.argmax(1) == y).float().mean().item()
        extra = {"cluster_accuracy": accuracy, "clusters": float(self.non_empty)}
        return loss, {**extra, "cluster_seconds": self.cluster_seconds}
