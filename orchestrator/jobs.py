"""One job, recorded: open its MLflow runs, call the worker entry point, close the runs.

The Ray trainables call these; so can a test or a shell, without Ray. Either first loads the
installed plugins (contract/plugins.py), as the CLI did before the file was validated, so that a
worker's tables are the driver's; an evaluation job runs the kind it names. Each job's runs get its
peak memory (`workers.memory`) at the end. `report`, when given,
receives the job's figures while it runs (`orchestrator.progress.Reporting`): the trainable
passes Tune's `report`, so the driver's live line sees the job move.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from contract import plugins
from contract.jobs import EvaluationJob, PretrainJob
from orchestrator.evaluations import EVALUATIONS
from orchestrator.faults import Fault, arm
from orchestrator.keys import RESULTS_VERSION
from orchestrator.progress import Reporting
from orchestrator.record.queries import finished
from orchestrator.record.recorder import MlflowRecorder
from orchestrator.record.runs import Tracking, start_run
from orchestrator.record.schema import CELL, PRETRAIN, TAG
from orchestrator.record.store import artifact_names, download
from orchestrator.record.system import system_metrics


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    """Nested settings -> dotted MLflow params: {"method.lr": 0.1, ...}."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else k, v))
        return out
    return {prefix: value}


def pretrain_params(job: PretrainJob) -> dict[str, Any]:
    data = job.model_dump(mode="json", exclude={"key", "label", "images", "drawn", "coordinates"})
    if (drawn := job.drawn) is not None:  # read on the worker, which records their hash
        what = f"chosen{drawn.n}" if drawn.chosen else f"n{drawn.n}:d{drawn.draw_seed}"
        images, n = f"{drawn.dataset}:{what}", drawn.n
    else:
        images = ",".join(f"{Path(f.path).name}:{f.sha256[:12]}" for f in job.images) or None
        n = len(job.images) or None
    return {**run_params(flatten("", data), job.coordinates), "images": images, "n": n}


def run_params(settings: dict[str, Any], coordinates: dict[str, Any]) -> dict[str, Any]:
    """A run's params: its job's settings, then its grid coordinates (`seed` the grid's, which
    pairs runs across rows); a job under a second seed stream keeps its own as `stream_seed`."""
    params = {**settings, **coordinates}
    if "seed" in settings and settings["seed"] != coordinates.get("seed", settings["seed"]):
        params["stream_seed"] = settings["seed"]
    return params


Report = Callable[[dict[str, float]], None]


def run_pretrain(
    job: PretrainJob, tracking: Tracking, faults: Sequence[Fault] = (), report: Report | None = None
) -> str:
    """Train and record one pretrain job; returns its run id. A retried job resumes from the
    run's latest `resume.pt`. Re-raises the job's error after marking the run FAILED (or
    KILLED), so Ray can retry it."""
    from workers import memory, tasks, training

    run_id, attempt = start_run(
        tracking, PRETRAIN, job.key, job.label, tracking.sweep_run_id, pretrain_params(job),
        {TAG + "results_version": str(RESULTS_VERSION), TAG + "device": str(training.device())},
    )
    mlflow_recorder = MlflowRecorder(tracking.uri, {None: run_id})
    try:
        plugins.load()  # a method's implementation may be a plugin's
        recorder = arm(list(faults), "pretrain", job.label, job.key, attempt, mlflow_recorder)
        if report is not None:
            recorder = Reporting(recorder, report)
        mlflow_recorder.text(json.dumps(job.model_dump(mode="json"), indent=2), "config.json")
        with tempfile.TemporaryDirectory() as workdir, system_metrics(tracking.uri, [run_id], tracking.system_metrics):
            resume = resume_point(tracking.uri, run_id, attempt, Path(workdir), mlflow_recorder)
            memory.reset()
            tasks.pretrain(job, recorder, Path(workdir), resume)
            mlflow_recorder.metrics(memory.peaks(), 0)
    except BaseException as error:
        mlflow_recorder.end(error)
        raise
    mlflow_recorder.end()
    return run_id


def resume_point(uri: str, run_id: str, attempt: int, workdir: Path, recorder: MlflowRecorder) -> Path | None:
    """The `resume.pt` an earlier attempt of the run left, if torch can load it; a corrupt one
    is ignored with a warning tag (on the recorder's runs: the job's one run), and the job
    starts over."""
    if attempt == 1 or "resume.pt" not in artifact_names(uri, run_id):
        return None
    resume = _readable(download(uri, run_id, "resume.pt", workdir / "earlier"))
    if resume is None:
        recorder.tag("warning", "corrupt resume.pt ignored: the job started over")
    return resume


def _readable(checkpoint: Path) -> Path | None:
    """The checkpoint, if torch can load it (weights only: a checkpoint never runs code)."""
    import torch

    try:
        torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001  (truncated, garbled, or not a checkpoint at all)
        return None
    return checkpoint


def run_evaluation(
    job: EvaluationJob, tracking: Tracking, faults: Sequence[Fault] = (), report: Report | None = None
) -> dict[str, Any]:
    """Evaluate the finished pretrain run's trunk with the kind the job names (linear probes on all
    the job's layers, a finetuning, style transfer of every pair, ...); one run per cell, under
    the pretrain run. Returns the kind's scores."""
    from workers import memory, training

    pretrain = finished(tracking.uri, tracking.experiment_id, PRETRAIN).get(job.pretrain_key)
    if pretrain is None:
        raise RuntimeError(f"no FINISHED pretrain run with key {job.pretrain_key} for {job.label}")
    base = job.model_dump(mode="json", exclude={"key", "label", "cells", "data_root", "pretrain_key"})
    started = {
        cell.part: start_run(
            tracking, CELL, cell.key, cell.label, pretrain,
            run_params(flatten("", base), cell.coordinates),
            {TAG + "pretrain_key": job.pretrain_key, TAG + "results_version": str(RESULTS_VERSION),
             TAG + "device": str(training.device())},
        )
        for cell in job.cells
    }
    runs = {part: run_id for part, (run_id, _) in started.items()}
    attempt = max(a for _, a in started.values())
    mlflow_recorder = MlflowRecorder(tracking.uri, runs)
    try:
        plugins.load()  # the job's kind may be a plugin's
        kind = EVALUATIONS[job.evaluation]
        recorder = arm(list(faults), "evaluation", job.label, job.key, attempt, mlflow_recorder)
        if report is not None:
            recorder = Reporting(recorder, report)
        for cell in job.cells:
            config = {**job.model_dump(mode="json", exclude={"cells"}), "cell": cell.model_dump(mode="json")}
            mlflow_recorder.text(json.dumps(config, indent=2), "config.json", cell.part)
        with (
            tempfile.TemporaryDirectory() as workdir,
            system_metrics(tracking.uri, list(runs.values()), tracking.system_metrics),
        ):
            checkpoint = download(tracking.uri, pretrain, job.checkpoint, Path(workdir) / "trunk")
            resume = None
            if kind.resumable:  # a resumable job is one cell: one run, which holds its resume.pt
                (run_id,) = runs.values()
                resume = resume_point(tracking.uri, run_id, attempt, Path(workdir), mlflow_recorder)
            memory.reset()
            scores = kind.run(job, checkpoint, recorder, Path(workdir), resume)
            mlflow_recorder.metrics(memory.peaks(), 0)  # on every cell's run
    except BaseException as error:
        mlflow_recorder.end(error)
        raise
    mlflow_recorder.end()
    return scores
