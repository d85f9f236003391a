"""DeepCluster: Caron, Bojanowski, Joulin, Douze, "Deep clustering for unsupervised learning of
visual features", ECCV 2018.

Every epoch: the network's fc7 features of the (clustered) mono samples' centre crops are
PCA-whitened and L2-normalised, k-means groups them into k clusters, and the cluster ids become
the labels of a classification epoch over the loader's views of the samples the `sampler` picks
(upstream's: UnifLabelSampler's draws looked up in a dataset stored cluster by cluster, which
visits clusters about in proportion to their size; or uniformly across the clusters); the top
layer is re-initialised for the new labels. Settings (contract.methods.DeepClusterConfig):
samples (d), epochs, batch_size, lr, schedule, momentum, weight_decay, k, pca_dim,
kmeans_iterations, cluster_samples (how many samples are clustered; upstream clusters all of
them), sobel, sampler, loader.
k-means is plain torch (Lloyd's algorithm on the job's device), as faiss is not required.
Memory: the features are gathered on the host in float32 (as upstream's numpy array) and the
PCA reads them in chunks, so the device holds only the (n, pca_dim) whitened matrix and
chunk-sized temporaries; `clustering_memory` states both peaks (at the paper's d: 21.1 GB on the
host, 4.1 GB on the device).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from workers.methods.base import EpochData, Method
from workers.models.alexnet import AlexNet, pool5_shape

SPLIT_EPS = 1 / 1024  # faiss's relative perturbation when an empty cluster takes half of a full one
# Rows per step of the PCA and of k-means' assignments: bounds their (CHUNK, D) and (CHUNK, k)
# temporaries on the device (0.8 GB and 1.3 GB at D = 4096, k = 10000).
CHUNK = 16384


def pca_whiten(
    x: torch.Tensor,
    dim: int,
    eps: float = 1e-5,
    device: torch.device | None = None,
    chunk: int = CHUNK,
) -> torch.Tensor:
    """(n, D) -> (n, dim) float32 on `device` (x's by default): centred, projected on the top
    `dim` principal axes, each axis scaled to unit variance (faiss's PCAMatrix with eigen_power
    -0.5, as DeepCluster). x may stay on the host: it is read in chunks of rows moved to the
    device, for the mean, for the covariance (accumulated in float64, (D, D)) and for the
    projection, so no copy of all of x is made.

    Raises:
        ValueError: `dim` exceeds the feature size D.
    """
    n, features = x.shape
    if dim > features:
        raise ValueError(f"cannot keep {dim} principal axes of {features}-dim features")
    device = x.device if device is None else device
    mean = torch.zeros(features, dtype=torch.float64, device=device)
    for part in x.split(chunk):
        mean += part.to(device).sum(0, dtype=torch.float64)
    mean /= max(n, 1)
    covariance = torch.zeros(features, features, dtype=torch.float64, device=device)
    for part in x.split(chunk):
        centred = _centred(part, mean)
        covariance.addmm_(centred.T, centred)
        del centred  # freed before the next chunk's is made: one (chunk, D) float64 at a time
    covariance /= max(n - 1, 1)
    values, vectors = torch.linalg.eigh(covariance)  # ascending order
    top = vectors[:, -dim:].flip(1)  # (D, dim), largest variance first
    scale = (values[-dim:].flip(0).clamp_min(0) + eps).sqrt()
    out = torch.empty(n, dim, device=device)
    for start, part in zip(range(0, n, chunk), x.split(chunk), strict=True):
        out[start : start + len(part)] = (_centred(part, mean) @ top).div_(scale)
    return out


def _centred(part: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """(chunk, D) rows moved to mean's device, minus the (D,) float64 mean: a new float64 tensor,
    the one copy made (`part - mean` would, on the CPU, also cast `part` to float64 first)."""
    return part.to(mean.device).to(torch.float64, copy=True).sub_(mean)


def kmeans_assign(x: torch.Tensor, centroids: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
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


def cluster_features(
    features: torch.Tensor, pca_dim: int, k: int, iterations: int, generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """(n, D) features (float32, on the host) -> (n,) cluster ids, on the host: upstream's
    preprocess_features (PCA-whitening to `pca_dim`, rows L2-normalised) and run_kmeans, with the
    (n, pca_dim) whitened matrix on `device` and the features read from the host in chunks."""
    x = pca_whiten(features, min(pca_dim, features.shape[1]), device=device)
    F.normalize(x, dim=1, out=x)  # in place: no second (n, pca_dim) matrix
    _, assignments = kmeans(x, k, iterations, generator)
    return assignments.cpu()


def clustering_memory(
    n: int, features: int, pca_dim: int, k: int, chunk: int = CHUNK
) -> tuple[int, int]:
    """Peak bytes of one re-clustering of n samples with D = `features`: (host, device), an
    upper bound that adds up every phase (the model and its optimizer state not counted).

    Host: n D 4 (the float32 features, filled batch by batch) + 64 n (sample indices, cluster
    ids and the epoch's draw, int64). Device: n (4 pca_dim + 16) (the whitened matrix, k-means'
    assignments and their chunks before they are joined) + 32 D^2 (the float64 covariance, its
    eigenvectors, eigh's workspace) + 12 chunk D (a float32 chunk of features and its float64
    centred copy) + 8 chunk pca_dim (a projected chunk) + 8 chunk k (k-means' (chunk, k) scores,
    twice) + 16 k pca_dim (centroids, their sums and the update).

    Paper scale (n = 1,281,167, D = 4096, pca_dim 256, k = 10000, chunk 16384): host 21.1 GB
    (21.0 GB of features, as upstream's float32 numpy array); device 4.1 GB (1.33 GB whitened
    matrix, 0.54 GB PCA, 0.81 GB feature chunks, 1.31 GB scores), which fits an 80 GB card.
    Before the features went to the host, the device held them with two float64 copies for the
    PCA: 20 n D = 105 GB.
    """
    host = n * features * 4 + 64 * n
    device = (
        n * (4 * pca_dim + 16)
        + 32 * features**2
        + 12 * chunk * features
        + 8 * chunk * pca_dim
        + 8 * chunk * k
        + 16 * k * pca_dim
    )
    return host, device


def uniform_cluster_sample(assignments: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """`total` positions into `assignments`, drawn uniformly over the non-empty clusters
    (DeepCluster's UnifLabelSampler, util.py l.61-86): about total / (non-empty clusters) from
    each, with replacement only where a cluster is smaller than its share; shuffled."""
    clusters = np.unique(assignments)
    share = total // len(clusters) + 1
    picked = []
    for c in clusters:
        members = np.flatnonzero(assignments == c)
        picked.append(rng.choice(members, share, replace=len(members) < share))
    return rng.permutation(np.concatenate(picked))[:total]


def stored_by_cluster(assignments: np.ndarray, indexes: np.ndarray) -> np.ndarray:
    """What upstream trains on for the image indexes its sampler yields: main.py hands them to
    clustering.py's ReassignedDataset (cluster_assign l.133-147), which stores its items
    cluster by cluster (cluster 0's images in index order, then cluster 1's, ...) and looks an
    index up as a position in that list (__getitem__ l.59-70). So index v is the image stored at
    position v: `indexes` -> the images upstream loads, each with its stored cluster."""
    return np.argsort(assignments, kind="stable")[indexes]


def cluster_sample(assignments: np.ndarray, total: int, rng: np.random.Generator, sampler: str) -> np.ndarray:
    """The epoch's `total` samples, as positions into `assignments`: `uniform`, the sampler's
    draws themselves; `upstream`, the images those draws pick in upstream's ReassignedDataset
    (stored_by_cluster), which visits clusters about in proportion to their size."""
    drawn = uniform_cluster_sample(assignments, total, rng)
    return stored_by_cluster(assignments, drawn) if sampler == "upstream" else drawn


class PseudoLabelled(Dataset):
    """Item j: (sample `indices[j]` of the mono dataset, its cluster id `labels[j]`)."""

    def __init__(self, dataset: Dataset, indices: torch.Tensor, labels: torch.Tensor):
        self.dataset, self.indices, self.labels = dataset, indices, labels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset[int(self.indices[j])], self.labels[j]

    def batch(
        self, positions: np.ndarray, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Items `positions` on `device`: (the view's batch of their samples, (B,) cluster ids)."""
        at = torch.as_tensor(positions)
        return self.dataset.batch(self.indices[at].numpy(), device), self.labels[at].to(device)


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
    def features(
        self, dataset: EpochData, indices: np.ndarray, device: torch.device
    ) -> torch.Tensor:
        """(n,) mono sample indices -> (n, hidden) fc7 features before its ReLU, in eval mode and
        the job's precision (`compute`): float32 on the host, filled batch by batch (at d =
        1.28M they are 21 GB, as upstream's); the view's batches are made on `device`, as
        training's."""
        was_training = self.training
        self.eval()
        out = torch.empty(len(indices), self.top.in_features)
        for start in range(0, len(indices), self.config.batch_size):
            x = dataset.batch(indices[start : start + self.config.batch_size], device)
            with self.compute.autocast():  # the batch is made outside it; PCA and k-means too
                features = self.classifier[:-1](self.trunk(x).flatten(1))
            out[start : start + len(x)] = features  # float32, whatever the precision
        self.train(was_training)
        return out

    def on_epoch_start(self, epoch: int, dataset: Any, device: torch.device) -> EpochData:
        """Clusters the mono samples' centre crops (upstream: Resize(256) + CenterCrop(224),
        main.py l.122-123), then trains on the loader's view of the epoch (RandomResizedCrop +
        flip, clustering.py l.142-143)."""
        if epoch != self.clustered_epoch:
            self.recluster(epoch, dataset.centred(), device)
        return PseudoLabelled(dataset.at_epoch(epoch), self.indices, self.labels)

    def recluster(self, epoch: int, dataset: EpochData, device: torch.device) -> None:
        cfg, tick = self.config, time.perf_counter()
        # Drawn from the global stream (seeded with the job): reproducible, and resumable.
        rng = np.random.default_rng(int(torch.randint(2**62, ())))
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        n = len(dataset)  # type: ignore[arg-type]
        clustered = np.sort(rng.choice(n, cfg.cluster_samples, replace=False)) if cfg.cluster_samples else np.arange(n)
        feats = self.features(dataset, clustered, device)
        assignments = cluster_features(
            feats, cfg.pca_dim, cfg.k, cfg.kmeans_iterations, generator, device
        )
        picked = cluster_sample(assignments.numpy(), n, rng, cfg.sampler)
        self.indices = torch.from_numpy(clustered[picked])
        self.labels = assignments[torch.from_numpy(picked)]
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
