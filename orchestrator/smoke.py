"""`monosweep smoke`: every job shape of a sweep file run for K steps at the file's real shapes
(input size, width, the sampler's d, full probe heads) through Ray and MLflow on this machine,
and timed: how a paper-scale file is checked before a cluster is rented.

A job shape is a row of `monosweep plan --estimate` (`estimate.row_name`): a method's pretrain
job, an evaluation kind on a dataset. Its first job in grid order runs (an evaluation on the
trunk of a shape's own pretrain job where one is), capped at K steps (`max_steps`, in no key).
Smoke runs are never mistaken for results: their keys start `smoke-`, which no content key (hex)
does; they go to their own experiment, `smoke/NAME` (a sweep's name has no `/`); every run is
tagged `monosweep.smoke`; and the store is a throwaway one unless the caller names one.

What the step cap does not bound is bounded here and said in the table's notes: DeepCluster
clusters all d samples before each epoch (hours at d = 1,281,167 on a CPU); its smoke job
clusters k of them, and the note extrapolates that time to all d.

`shapes` and `table` are pure; `run` goes through `sweep.run` (Ray, MLflow, the live line).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.jobs import EvaluationJob, PretrainJob
from orchestrator.estimate import row_name
from orchestrator.evaluations import EVALUATIONS
from orchestrator.grid import Expansion
from orchestrator.plan import Plan
from orchestrator.record.schema import TAG, RunView
from orchestrator.snapshots import CHECKPOINT
from orchestrator.spec import Resources, StageResources
from orchestrator.sweep import Outcome, Prepared

SMOKE = TAG + "smoke"  # on the experiment and every run: the step cap K
PREFIX = "smoke-"  # of every smoke key: content keys are hex, so never a real cell's


def experiment_name(sweep_name: str) -> str:
    return f"smoke/{sweep_name}"


@dataclass(frozen=True)
class Shape:
    """One row: the job that runs for it (capped, smoke keys, the data roots given) and, for
    DeepCluster, how many of its d samples that job clusters."""

    stage: str  # "pretrain" or "evaluation"
    row: str
    job: PretrainJob | EvaluationJob
    clustered: int | None = None


def shapes(sweep: Expansion, steps: int) -> list[Shape]:
    """One job per job shape of the sweep, capped at `steps` steps, pre-trainings first (the
    data roots are the expanded spec's: `sweep.prepare` takes the ones --data-root gives)."""
    trunks: dict[str, PretrainJob] = {}
    for job in sweep.pretrain_jobs.values():
        trunks.setdefault(row_name(job), job)
    chosen = {job.key for job in trunks.values()}
    evaluations: dict[str, EvaluationJob] = {}
    for job in sweep.evaluation_jobs.values():
        row = row_name(job)
        first = evaluations.get(row)
        if first is None or (job.pretrain_key in chosen and first.pretrain_key not in chosen):
            evaluations[row] = job
    for job in evaluations.values():  # a trunk no shape's first job is (none in the shipped files)
        if job.pretrain_key not in chosen:
            trunk = sweep.pretrain_jobs[job.pretrain_key]
            trunks[trunk.label], chosen = trunk, chosen | {trunk.key}
    out = []
    for row, trunk in trunks.items():
        method, clustered = _clustered(trunk.method)
        job = _capped(trunk.model_copy(update={"method": method}), steps)
        out.append(Shape("pretrain", row, job, clustered))
    out += [Shape("evaluation", row, _capped(job, steps)) for row, job in evaluations.items()]
    return out


def _clustered(method: Any) -> tuple[Any, int | None]:
    """A method that clusters its samples before each epoch (DeepCluster) clusters only k of
    them in a smoke run, the fewest k-means takes; (settings, samples clustered or None)."""
    if "cluster_samples" not in type(method).model_fields:
        return method, None
    clustered = min(method.cluster_samples or method.samples, method.k)
    if clustered == (method.cluster_samples or method.samples):
        return method, None
    return method.model_copy(update={"cluster_samples": clustered}), clustered


def _capped(job: Any, steps: int) -> Any:
    """The job as a smoke run runs it: `steps` steps, smoke keys."""
    update: dict[str, Any] = {"key": PREFIX + job.key, "max_steps": steps}
    if isinstance(job, EvaluationJob):
        update["pretrain_key"] = PREFIX + job.pretrain_key
        update["checkpoint"] = CHECKPOINT  # the capped run's own trunk: it reaches no snapshot
        update["cells"] = tuple(c.model_copy(update={"key": PREFIX + c.key}) for c in job.cells)
    return job.model_copy(update=update)


def smoke_sweep(prepared: Prepared, chosen: list[Shape], uri: str, storage: Path) -> Prepared:
    """The smoke run as a sweep of its own: the chosen jobs and their cells under smoke keys,
    its own experiment, store and trial storage, on a local Ray, no retries, no injected faults."""
    spec, sweep = prepared.spec, prepared.sweep
    jobs = {s.job.key: s.job for s in chosen}
    cells = [
        c.model_copy(update={k: PREFIX + getattr(c, k) for k in ("key", "pretrain_key", "job_key")})
        for c in sweep.cells if PREFIX + c.job_key in jobs
    ]
    smoke = spec.model_copy(update={
        "name": experiment_name(spec.name), "retries": 0, "faults": [], "system_metrics": False,
        "tracking_uri": uri, "ray_address": "local", "storage": str(storage),
    })
    expansion = Expansion(
        smoke, cells,
        {k: j for k, j in jobs.items() if isinstance(j, PretrainJob)},
        {k: j for k, j in jobs.items() if isinstance(j, EvaluationJob)},
    )
    return Prepared(smoke, expansion, uri)


def plan_of(prepared: Prepared) -> Plan:
    """Every job of a smoke sweep, pretrain jobs with no evaluation among them too (a plan
    from cells alone would leave those out)."""
    sweep = prepared.sweep
    return Plan(list(sweep.pretrain_jobs.values()), list(sweep.evaluation_jobs.values()), [], 0, len(sweep.cells))


def run(smoke: Prepared, chosen: list[Shape], steps: int) -> tuple[Outcome, list[Row]]:
    """Run a smoke sweep (`smoke_sweep`) through a local Ray, one job at a time with all of
    this machine's CPUs (and a GPU where the file asks for one and there is one), so that no
    job's timing shares the machine; the outcome and the table.

    Raises:
        KeyboardInterrupt: cancelled (the runs are marked KILLED first, as a sweep's).
    """
    from orchestrator import ray_driver, sweep
    from orchestrator.record import queries, store
    from orchestrator.record.schema import CELL, PRETRAIN

    cpus = ray_driver.connect("local", [Resources(cpus=1)])  # this machine's CPUs
    asked, gpus = smoke.spec.resources, ray_driver.gpus()
    resources = StageResources(
        pretrain=Resources(cpus=cpus, gpus=min(asked.pretrain.gpus, gpus)),
        evaluation=Resources(cpus=cpus, gpus=min(asked.evaluation.gpus, gpus)),
    )
    smoke = Prepared(smoke.spec.model_copy(update={"resources": resources}), smoke.sweep, smoke.uri)
    outcome = sweep.run(smoke, todo=plan_of(smoke), tags={SMOKE: str(steps)})
    uri = smoke.uri
    experiment = store.experiment_id(uri, smoke.spec.name)
    runs = {**queries.latest_runs(uri, experiment, PRETRAIN), **queries.latest_runs(uri, experiment, CELL)}
    return outcome, table(chosen, runs, steps)


@dataclass(frozen=True)
class Row:
    """What K steps of one job shape measured (None: not measured)."""

    stage: str
    row: str
    status: str
    seconds_per_step: float | None
    samples_per_s: float | None
    peak_host_mb: float | None
    peak_device_mb: float | None
    bottleneck: str | None  # "data" or "model"; None until the job logs both halves of a step
    notes: list[str] = field(default_factory=list)


def _batch(job: Any) -> int:
    """Samples one step reads: the method's batch, or what the evaluation kind says (the probe's
    or finetuning's batch; one image a style-transfer step)."""
    if isinstance(job, PretrainJob):
        return getattr(job.method, "batch_size", 1)  # random has none: it takes no step
    return EVALUATIONS[job.evaluation].step_samples(job)


def measure(shape: Shape, run: RunView | None, steps: int) -> Row:
    """A shape's row from its run's latest metrics (an evaluation job's: its first cell's run,
    which holds the job's figures too)."""
    if run is None:
        return Row(shape.stage, shape.row, "NOT RUN", None, None, None, None, None)
    m, notes = run.metrics, []
    rate, per_step = m.get("samples_per_s"), None
    if rate:
        # a cached probe's trunk passes run before its heads' steps: charged to them
        per_step = _batch(shape.job) / rate + m.get("feature_seconds", 0.0) / steps
        rate = _batch(shape.job) / per_step
    elif run.status == "FINISHED":
        notes.append("trains nothing (its trunk is as initialised)")
    data, compute = m.get("data_s_per_step"), m.get("compute_s_per_step")
    bottleneck = None if data is None or compute is None else ("data" if data > compute else "model")
    if shape.clustered and "cluster_seconds" in m:
        d, seconds = shape.job.method.samples, m["cluster_seconds"]  # type: ignore[union-attr]
        notes.append(
            f"clustered {shape.clustered:,} of its d = {d:,} samples before its epoch (smoke cap), in "
            f"{seconds:.0f} s: all d, ~{seconds * d / shape.clustered / 3600:.1f} h before each epoch"
        )
    if error := run.tags.get(TAG + "error"):
        notes.append(error)
    return Row(
        shape.stage, shape.row, run.status, per_step, rate,
        m.get("peak_host_memory_mb"), m.get("peak_device_memory_mb"), bottleneck, notes,
    )


def table(chosen: list[Shape], runs: Mapping[str, RunView], steps: int) -> list[Row]:
    return [measure(s, runs.get(_run_key(s.job)), steps) for s in chosen]


def _run_key(job: Any) -> str:
    """The key of the run that holds a job's figures: its own, or its first cell's."""
    return job.cells[0].key if isinstance(job, EvaluationJob) else job.key


def _number(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}g}" if x < 1000 else f"{x:,.0f}"


def text(rows: list[Row]) -> list[str]:
    """The table as printed lines, notes as numbered footnotes."""
    device = any(r.peak_device_mb is not None for r in rows)
    head = ["job shape", "status", "s/step", "samples/s", "peak RSS MiB"]
    head += ["peak GPU MiB"] * device + ["bottleneck"]
    body, notes = [], []
    for r in rows:
        marks = ""
        for note in r.notes:
            notes.append(note)
            marks += f" [{len(notes)}]"
        cells = [f"{r.row}{marks}", r.status, _number(r.seconds_per_step), _number(r.samples_per_s),
                 _number(r.peak_host_mb, 4)]
        cells += [_number(r.peak_device_mb, 4)] * device + [r.bottleneck or "-"]
        body.append(cells)
    widths = [max(len(c[i]) for c in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
             for cells in [head, *body]]
    return lines + [f"[{i}] {note}" for i, note in enumerate(notes, 1)]


def as_json(rows: list[Row]) -> list[dict[str, Any]]:
    return [r.__dict__ for r in rows]
