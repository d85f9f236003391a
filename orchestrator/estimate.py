"""What a sweep will cost before it runs: per job, the samples it reads, its FLOPs, its GPU-hours
at a stated throughput, and its peak GPU memory; per row (a job kind with what sets its cost:
method, dataset, k, a Sobel trunk) and for the sweep.

The arithmetic is here: how many steps and passes each job runs, as the workers run them
(training.fit's whole batches per epoch, DeepCluster's extraction and clustering every epoch, a
probe's passes of the train split and its test views, finetuning, style-transfer steps). What
one sample costs is measured by workers.costs on the real modules at the job's shapes (torch,
imported when an estimate is asked for: the driver plans without it).

Peak GPU memory of a job, an estimate: its State (parameters and buffers, gradients, optimizer
state: SGD's momentum is 1x, Adam's moments 2x the trained parameters) plus the largest
activation set of its phases: the bytes a training step saves for backward at the job's batch;
a frozen trunk's forward at its batch (and views), bounded by what the same forward would save;
DeepCluster's clustering, about (4 pca_dim + 16) bytes per clustered sample plus chunk-sized
temporaries (workers.methods.deepcluster.clustering_memory; its features stay on the host,
4 D bytes a sample). Not counted: the allocator's caching, cuDNN's workspaces, CUDA's context.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from contract.compute import ComputeConfig
from contract.datasets import CLASSES, LAYERS, TEST_SIZES, TRAIN_SIZES
from contract.jobs import EvaluationJob, FinetuneJob, PretrainJob, ProbeJob, StyleJob
from contract.methods import DeepClusterConfig
from orchestrator.evaluations import EVALUATIONS
from orchestrator.grid import Expansion

# An H100 SXM's dense BF16 tensor-core peak: every MFU here is a share of it (stated in the
# output; --gpu-tflops changes it).
H100_BF16_TFLOPS = 989.0


@dataclass(frozen=True)
class Measured:
    """An MFU that `python -m bench.gpu` measured: production's training step (training.fit's,
    RotNet at 224 px on the paper's AlexNet) against the card's dense bf16 peak."""

    mfu: float
    card: str
    date: str


# By compute setting (ComputeConfig.label): what bench.gpu prints on a GPU, pasted here. Empty
# until a GPU run fills it (bench/README.md names the command); the estimate then says "assumed".
MEASURED_MFU: dict[str, Measured] = {}
# Until then, by precision: 35 % of the bf16 peak is what convnets of this size reach in bf16
# with a good input pipeline; fp32 runs its convolutions on TF32 tensor cores, whose dense
# peak is half the bf16 one (494.7 of 989 TFLOP/s on an H100 SXM), so the same utilisation
# of its own peak is half the share of bf16's.
ASSUMED_MFU = {"fp32": 0.175, "bf16": 0.35}
VIEWS = {"resize": 1, "center": 1, "ten": 10}  # test views per image (ProbeConfig.test_crops)
EXTRACT_BATCH = 512  # images per batch of tasks.probe's feature cache and finetune.evaluate


@dataclass(frozen=True)
class Throughput:
    """The rate jobs are assumed to run at on one GPU: its peak times the MFU, and where that
    MFU comes from (given, measured or assumed)."""

    tflops: float
    mfu: float
    source: str = "given"

    def hours(self, flops: float) -> float:
        return flops / (self.tflops * 1e12 * self.mfu) / 3600


def throughput(compute: ComputeConfig, tflops: float = H100_BF16_TFLOPS, mfu: float | None = None) -> Throughput:
    """The rate a sweep's jobs run at: `mfu` when given (--mfu), else bench.gpu's measurement
    for the sweep's compute setting (MEASURED_MFU), else the precision's ASSUMED_MFU."""
    if mfu is not None:
        return Throughput(tflops, mfu, "given")
    if (measured := MEASURED_MFU.get(compute.label)) is not None:
        return Throughput(tflops, measured.mfu, f"measured by bench.gpu for {compute.label} on {measured.card}, "
                                                f"{measured.date}")
    return Throughput(tflops, ASSUMED_MFU[compute.precision], f"assumed for {compute.precision}: not measured "
                                                              "on a GPU yet (bench/README.md)")


@dataclass(frozen=True)
class JobEstimate:
    """One job: `samples` the images it reads (each epoch's pass counted; RotNet's rotations
    and a test image's views are of one sample), `flops` all it computes, `peak` bytes of GPU
    memory; `flops` None for a kind with no estimate."""

    stage: str  # "pretrain" or "evaluation"
    row: str
    samples: int = 0
    flops: float | None = None
    peak: float = 0.0


def row_name(job: PretrainJob | EvaluationJob) -> str:
    """The row a job is counted in, here and in `monosweep smoke` (one row per job shape): its
    method (and the labelled split it learns from), or its evaluation kind's `shape` of it."""
    if isinstance(job, PretrainJob):
        dataset = job.labels.dataset if job.labels else None
        return str(job.coordinates.get("method", job.method.name)) + (f" {dataset}" if dataset else "")
    return EVALUATIONS[job.evaluation].shape(job)


def pretrain(job: PretrainJob, costs: Any) -> JobEstimate:
    """A pre-training: epochs x whole batches of its dataset (the mono samples d, or the
    labelled train split); DeepCluster adds, every epoch, the features of its clustered
    samples and their PCA and k-means."""
    m, dataset = job.method, job.labels.dataset if job.labels else None
    row = row_name(job)
    step = costs.pretrain(m, job.network, CLASSES[dataset] if dataset else None)
    if not step.trains:
        return JobEstimate("pretrain", row, 0, 0.0, step.state.params)
    length = (getattr(m, "train_samples", None) or TRAIN_SIZES[dataset]) if dataset else m.samples
    # training.fit runs whole batches only
    samples = m.epochs * max(1, length // m.batch_size) * m.batch_size
    flops = samples * step.flops
    activations = step.saved * m.batch_size
    if isinstance(m, DeepClusterConfig):
        clustered = m.cluster_samples or m.samples
        features, dim = costs.extraction(m, job.network)
        cluster, cluster_bytes = costs.clustering(m, dim)
        flops += m.epochs * clustered * (features.flops + cluster.flops)
        samples += m.epochs * clustered
        activations = max(activations, cluster_bytes)
    return JobEstimate("pretrain", row, samples, flops, step.state.total + activations)


def probe(job: ProbeJob, costs: Any) -> JobEstimate:
    """Linear probes: every epoch the train split through the frozen trunk (to the deepest
    probed layer) and the heads' step, then the test split's views scored; with cached features
    the trunk sees each split once and the heads train and score on the cache every epoch."""
    cfg = job.probe
    layers = tuple(layer for layer in LAYERS if layer in {c.layer for c in job.cells})
    train, test = (
        cfg.train_samples or TRAIN_SIZES[job.dataset],
        cfg.test_samples or TEST_SIZES[job.dataset],
    )
    views = VIEWS[cfg.test_crops]
    trunk = costs.trunk_pass(job.network, layers)
    heads, score = costs.probe_heads(job.network, layers, CLASSES[job.dataset], cfg)
    if cfg.cache_features:
        samples = train + test
        flops = (train + test * views) * trunk.flops + cfg.epochs * (
            train * heads.flops + test * score.flops
        )
        activations = max(EXTRACT_BATCH * views * trunk.held, cfg.batch_size * heads.saved)
    else:
        samples = cfg.epochs * train + test
        flops = cfg.epochs * train * (trunk.flops + heads.flops) + test * (
            views * trunk.flops + score.flops
        )
        activations = cfg.batch_size * max(trunk.held + heads.saved, views * trunk.held)
    return JobEstimate("evaluation", row_name(job), samples, flops, heads.state.total + activations)


def finetune(job: FinetuneJob, costs: Any) -> JobEstimate:
    """Finetuning: epochs x whole batches of the train split, then the test split (one view)."""
    cfg = job.finetune
    train, test = (
        cfg.train_samples or TRAIN_SIZES[job.dataset],
        cfg.test_samples or TEST_SIZES[job.dataset],
    )
    step, score = costs.finetune(cfg, job.network, CLASSES[job.dataset], job.frozen)
    seen = cfg.epochs * max(1, train // cfg.batch_size) * cfg.batch_size
    activations = max(cfg.batch_size * step.saved, EXTRACT_BATCH * score.held)
    return JobEstimate(
        "evaluation",
        row_name(job),
        seen + test,
        seen * step.flops + test * score.flops,
        step.state.total + activations,
    )


def style(job: StyleJob, costs: Any) -> JobEstimate:
    """Style transfer: per pair, the targets' forwards, `steps` steps and a last forward."""
    cfg, pairs = job.style, len(job.cells)
    c = costs.style(cfg, job.network)
    flops = pairs * (c.setup + cfg.steps * c.step + c.final)
    return JobEstimate(
        "evaluation", row_name(job), pairs * (cfg.steps + 3), flops, c.state.total + c.saved
    )


def evaluation(job: EvaluationJob, costs: Any) -> JobEstimate:
    """An evaluation job, as its kind prices it (`EvaluationKind.cost`: the shipped kinds name
    the functions above); a kind without a cost is listed without an estimate."""
    kind = EVALUATIONS[job.evaluation]
    return kind.cost(job, costs) or JobEstimate("evaluation", f"{kind.shape(job)} (no estimate)")


def each(jobs: Iterable[PretrainJob | EvaluationJob], costs: Any = None) -> list[JobEstimate]:
    """Each job's estimate, in the order given: what `monosweep run` orders its pretrain jobs
    by and checks against --max-gpu-hours. `costs` as in `estimate`."""
    if costs is None:
        from workers import costs
    return [pretrain(j, costs) if isinstance(j, PretrainJob) else evaluation(j, costs) for j in jobs]


def estimate(sweep: Expansion, costs: Any = None) -> list[JobEstimate]:
    """Every job of the sweep, pre-trainings first. `costs`: what a sample costs (default:
    workers.costs, measured on the real modules)."""
    return each([*sweep.pretrain_jobs.values(), *sweep.evaluation_jobs.values()], costs)


@dataclass(frozen=True)
class Row:
    """The jobs of one row: per job the mean samples and FLOPs, and the largest peak."""

    stage: str
    name: str
    jobs: int
    samples: float
    flops: float | None
    peak: float

    def hours(self, rate: Throughput) -> float | None:
        return None if self.flops is None else rate.hours(self.flops)


def rows(estimates: Iterable[JobEstimate]) -> list[Row]:
    """One row per (stage, row name), in the order the jobs come."""
    groups: dict[tuple[str, str], list[JobEstimate]] = {}
    for e in estimates:
        groups.setdefault((e.stage, e.row), []).append(e)
    out = []
    for (stage, name), group in groups.items():
        n = len(group)
        flops = None if group[0].flops is None else sum(e.flops or 0.0 for e in group) / n
        out.append(
            Row(
                stage, name, n, sum(e.samples for e in group) / n, flops, max(e.peak for e in group)
            )
        )
    return out


def amount(x: float) -> str:
    """Three significant digits, or whole numbers with thousands separated."""
    return f"{x:.3g}" if x < 100 else f"{x:,.0f}"


def total_hours(table: list[Row], rate: Throughput, stage: str | None = None) -> float:
    return sum(r.jobs * (r.hours(rate) or 0.0) for r in table if stage in (None, r.stage))


def over_budget(
    jobs: Sequence[PretrainJob | EvaluationJob], rate: Throughput, limit: float, largest: int = 5
) -> list[str]:
    """Why `jobs` (what is left to run) do not fit in `limit` GPU-hours at `rate`, as lines of a
    refusal that names the `largest` jobs and how to raise the limit; none when they fit."""
    estimates = each(jobs)
    hours = [0.0 if e.flops is None else rate.hours(e.flops) for e in estimates]
    total = sum(hours)
    if total <= limit:
        return []
    unknown = sum(e.flops is None for e in estimates)
    lines = [
        f"max_gpu_hours: the estimate of what is left to run is {amount(total)} GPU-hours ({len(jobs)} jobs), "
        f"above the limit of {limit:g}; nothing was started",
        f"  at {rate.tflops:g} TFLOP/s per GPU x MFU {rate.mfu:g} ({rate.source})"
        + (f"; {unknown} jobs of kinds without an estimate counted as 0" if unknown else ""),
        "  the largest jobs:",
    ]
    biggest = sorted(zip(hours, jobs, estimates, strict=True), key=lambda x: -x[0])[:largest]
    lines += [f"    {amount(h):>9} GPU-h  {job.label}  [{e.stage}: {e.row}]" for h, job, e in biggest]
    lines.append(
        f"  to run it anyway, raise the limit: --max-gpu-hours {math.ceil(total)} (or max_gpu_hours: "
        f"{math.ceil(total)} in the file); `monosweep plan FILE --estimate` prices every job kind"
    )
    return lines
