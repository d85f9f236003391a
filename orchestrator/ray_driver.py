"""The one module that imports ray: Ray Tune runs the pending jobs, GPU-aware, with retries.

One Tune run for the whole plan, with no barrier between the stages: a searcher
(`_Admission`, over the pure `orchestrator.pipeline`) suggests the pretrain jobs, and each
evaluation job (linear probes, finetuning, style transfer) once its own trunk's trial ended
FINISHED (an evaluation never starts before its trunk exists, and never waits for the other
trunks). Each trial asks for the spec's resources for its stage, so the file that runs on a
laptop (gpus: 0) runs on a GPU cluster unchanged. A failed trial is retried `retries` times,
except a numerical fault (NaN or diverged loss), which a seeded rerun would repeat; MLflow, not
Tune's state, is the record of what is done. While a job runs, its step, epoch, samples/s and
share done reach the live line as Tune results (`orchestrator.progress`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray import tune
from ray.tune.execution.placement_groups import resource_dict_to_pg_factory
from ray.tune.search import Searcher

from contract.jobs import EvaluationJob, PretrainJob
from orchestrator import processes
from orchestrator.errors import ClusterError
from orchestrator.pipeline import Pipeline
from orchestrator.progress import Board
from orchestrator.record.runs import Tracking
from orchestrator.spec import Resources, StageResources

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient


def connect(address: str | None, resources: Sequence[Resources]) -> float:
    """Join the cluster at `address` (or RAY_ADDRESS), else start a local Ray on this machine;
    returns how many jobs can run at once (the cluster's CPUs, or the most its autoscaler may
    start, over the smallest CPU request).

    Raises:
        ClusterError: a stage asks for GPUs (or more CPUs per job) than any node has.
    """
    address = address or os.environ.get("RAY_ADDRESS")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our progress line replaces Tune's tables
    # Ctrl-C must reach the driver (which marks runs KILLED), not be absorbed by Tune.
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    if not ray.is_initialized():
        # Quiet workers (results go to MLflow); the dashboard is off locally and never
        # bound beyond loopback by us.
        handler = signal.getsignal(signal.SIGTERM)
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        signal.signal(signal.SIGTERM, handler)  # ray.init installs its own, which aborts
    total, ceiling = ray.cluster_resources(), autoscaling_ceiling()
    check_fits(resources, total, ceiling)
    # An autoscaling cluster may start with no worker: count what it can grow to.
    return max(total.get("CPU", 0), (ceiling or {}).get("CPU", 0)) / min(r.cpus for r in resources)


def gpus() -> float:
    """The GPUs of the Ray cluster this process is connected to (`connect` first)."""
    return ray.cluster_resources().get("GPU", 0.0)


def check_fits(resources: Sequence[Resources], now: dict[str, float], ceiling: dict[str, float] | None) -> None:
    """Refuse a sweep that no node can ever run: a job asks for more GPUs (or CPUs) than the
    cluster has now or, for an autoscaling cluster, than its node groups can grow to
    (`ceiling`, None when the cluster does not autoscale). An autoscaling cluster may have no
    worker at all now (KubeRay groups that start at zero): Ray starts them for the jobs.

    Raises:
        ClusterError: naming the request and what the cluster has and may grow to.
    """
    for r in resources:
        for key, asked, unit in (("GPU", r.gpus, "GPU(s)"), ("CPU", r.cpus, "CPUs")):
            most = max(now.get(key, 0), (ceiling or {}).get(key, 0))
            if asked > most:
                grows = f" and can grow to {ceiling.get(key, 0)} (autoscaling)" if ceiling is not None else ""
                raise ClusterError(f"a job asks for {asked} {unit}, but the Ray cluster has {now.get(key, 0)}{grows}")


def autoscaling_ceiling() -> dict[str, float] | None:
    """The most of each resource the cluster's autoscaler may start (its node groups' resources
    times their max replicas, as KubeRay's `enableInTreeAutoscaling` publishes them), or None
    when no autoscaler published a configuration. Ray keeps this reader private; Ray Train's
    own resource check calls it the same way, and this is the one place that does here."""
    try:
        from ray._private.state import state

        return state.get_max_resources_from_cluster_config()
    except Exception:  # an older or newer Ray without it: no autoscaling known
        return None


class Progress(tune.Callback):
    """The live line (`orchestrator.progress.Board`), fed by Tune's events: a trial starts,
    reports from inside its job (`progress`, `step`, `epoch`, `samples_per_s`), ends."""

    def __init__(self, board: Board, jobs: Sequence[Any] = ()):
        self.board, self.jobs = board, list(jobs)
        self._last, self._tty = 0.0, sys.stderr.isatty()

    def line(self) -> str:
        return self.board.line()

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= (1 if self._tty else 15):
            self._last = now
            end = "" if self._tty else "\n"
            print(("\r\033[K" if self._tty else "") + self.line(), end=end, file=sys.stderr, flush=True)

    def _job(self, trial) -> Any:
        return self.jobs[trial.config["job"]]

    def on_trial_start(self, iteration, trials, trial, **info):
        job = self._job(trial)
        self.board.started(trial.trial_id, _stage(job), job.key)
        self.show(force=True)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "progress" in result:
            self.board.reported(trial.trial_id, result)
            self.show()

    def on_trial_complete(self, iteration, trials, trial, **info):
        failed = (trial.last_result or {}).get("failed")  # ended without a retry (a numerical fault)
        self.board.finished(trial.trial_id, not failed, 0 if failed else _cells(self._job(trial)))
        self.show(force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.board.finished(trial.trial_id, False)
        self.show(force=True)

    def on_step_begin(self, iteration, trials, **info):
        self.show()

    def close(self) -> None:
        self.show(force=True)
        if self._tty:
            print(file=sys.stderr)


def _stage(job: Any) -> str:
    return "pretrain" if isinstance(job, PretrainJob) else "evaluation"


def _cells(job: Any) -> int:
    """The cells a job finishes: an evaluation job's; a pretrain job finishes none itself."""
    return 0 if isinstance(job, PretrainJob) else len(job.cells)


class _Admission(Searcher):
    """Tune's side of `orchestrator.pipeline.Pipeline`: a trial is suggested when a job is
    ready (an evaluation job once its trunk's trial ended FINISHED), none while jobs wait for
    their trunks, FINISHED when nothing is left."""

    def __init__(self, pipeline: Pipeline, board: Board):
        super().__init__()
        self.pipeline, self.board = pipeline, board
        self.trials: dict[str, int] = {}  # trial id -> job index

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        i = self.pipeline.next()
        if i is None:
            return Searcher.FINISHED if self.pipeline.done else None
        self.trials[trial_id] = i
        return {"job": i}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        # Called once a trial has ended for good (Tune retries a failed one first); a trial
        # stopped while pending (the sweep cancelled) ends with no result, so not FINISHED. A
        # numerical fault ends the trial normally, with `failed` in its last result (Tune
        # itself sets `done` true at the end, whatever the job reported).
        if (i := self.trials.pop(trial_id, None)) is not None:
            finished = not error and bool(result) and not result.get("failed")
            if orphans := self.pipeline.ended(i, finished):
                self.board.orphaned("evaluation", len(orphans))

    def save(self, checkpoint_path: str) -> None:
        """Nothing to keep: MLflow, not Tune's state, says what is done (a rerun plans again)."""

    def restore(self, checkpoint_path: str) -> None:
        """See `save`."""


def _trial(config: dict[str, Any], jobs: list[Any], tracking: Tracking, faults: list[Any]) -> None:
    """A Tune trial: one job, run by the same function a test calls. While it runs, the job's
    figures go to the driver as Tune results (`Progress.on_trial_result`)."""
    from orchestrator import jobs as recorded

    job = jobs[config["job"]]
    # Which Ray node ran the job: hosts can share a name (several nodes on one machine).
    os.environ["MONOSWEEP_RAY_NODE"] = ray.get_runtime_context().get_node_id()
    run = recorded.run_pretrain if isinstance(job, PretrainJob) else recorded.run_evaluation
    try:
        run(job, tracking, faults, tune.report)
    except FloatingPointError as error:  # nan_loss, diverged: seeded, so a retry fails the same way
        tune.report({"done": 0, "failed": getattr(error, "reason", type(error).__name__)})
        return
    tune.report({"done": 1})


def run_jobs(
    pretrain: list[PretrainJob],
    evaluation: list[EvaluationJob],
    trained: set[str],
    tracking: Tracking,
    resources: StageResources,
    retries: int,
    storage: str,
    board: Board,
    faults: list[Any],
    slots: float,
    cost: dict[str, float] | None = None,
) -> None:
    """Run the jobs as the trials of one Tune run and wait for all of them: an evaluation job
    starts once its trunk is FINISHED (`trained`: finished before this run), whatever the
    other pretrain jobs do, and the dearest pretrain job first (`cost`: pretrain key -> its
    estimated FLOPs; `orchestrator.pipeline`). At most `slots` trials are live, the most the
    cluster can run at once: more would only wait for resources, queued by Ray in front of the
    evaluation jobs that become ready."""
    pipeline = Pipeline(pretrain, evaluation, trained, cost)
    jobs = pipeline.jobs
    if not jobs:
        return
    progress = Progress(board, jobs)
    stage_resources = {"pretrain": resources.pretrain, "evaluation": resources.evaluation}

    def request(config: dict[str, Any]) -> Any:
        r = stage_resources[_stage(jobs[config["job"]])]
        return resource_dict_to_pg_factory({"cpu": r.cpus, "gpu": r.gpus})

    trainable = tune.with_resources(tune.with_parameters(_trial, jobs=jobs, tracking=tracking, faults=faults), request)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=_Admission(pipeline, board),
            num_samples=len(jobs),  # one trial per job (a retry reruns its trial); fewer when a trunk fails
            max_concurrent_trials=max(1, int(slots)),
            reuse_actors=True,  # a worker process imports torch and mlflow once, not once per job
            trial_name_creator=lambda t: jobs[t.config["job"]].label,
            trial_dirname_creator=lambda t: f"{_stage(jobs[t.config['job']])}_{jobs[t.config['job']].key}",
        ),
        run_config=tune.RunConfig(
            name=f"sweep-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=storage,
            failure_config=tune.FailureConfig(max_failures=retries),
            callbacks=[progress],
            verbose=0,
        ),
    )
    tuner.fit()
    progress.close()


def stop(timeout: float = 30.0) -> None:
    """Stop this driver's trials: Ray shuts down (a local Ray with every process it started; on
    a cluster, the driver's actors go with their owner). On this machine the trials' processes
    are then waited for, `timeout` seconds at most, and any left are killed, so that no job
    writes to the record after the driver's last pass over it."""
    below = processes.descendants(os.getpid())  # before the shutdown: orphaned workers change parent
    if ray.is_initialized():
        # A Ctrl-C that landed inside Ray's own calls can leave ray.shutdown() waiting for ever:
        # it gets a bounded time, then the processes are stopped here.
        shutdown = threading.Thread(target=ray.shutdown, name="ray-shutdown", daemon=True)
        shutdown.start()
        shutdown.join(timeout)
    deadline = time.monotonic() + timeout
    while (alive := [pid for pid in below if processes.alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _jobs(address: str) -> JobSubmissionClient:
    """A Jobs API client for the dashboard at `address`.

    Raises:
        ClusterError: nothing answers there.
    """
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except ConnectionError as e:
        raise ClusterError(f"no Ray Jobs API at {address}: {e}") from e


# How long a stopped job's driver has between SIGTERM and SIGKILL to mark its runs KILLED
# (Ray's job supervisor reads it from the job's runtime_env). Ray's default is 3 s: enough
# for tests/test_cli.py's one-trial sweep on a local head, no margin for a cluster's Tune
# teardown and a remote MLflow server (the local SIGTERM test allows 120 s).
STOP_GRACE_S = 60


def submit(address: str, working_dir: Path, entrypoint: str, submission_id: str) -> str:
    """Run `entrypoint` as a Ray job on the cluster whose dashboard is at `address`: the
    driver then lives on the cluster, not on this laptop. The folder travels with it.

    Raises:
        ClusterError: nothing answers at `address`.
    """
    runtime_env = {"working_dir": str(working_dir), "env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": str(STOP_GRACE_S)}}
    return _jobs(address).submit_job(entrypoint=entrypoint, submission_id=submission_id, runtime_env=runtime_env)


def job_logs(address: str, job_id: str, follow: bool) -> Iterator[str]:
    """The job's output so far, or (follow) streamed until it ends."""
    client = _jobs(address)
    if not follow:
        yield client.get_job_logs(job_id)
        return
    stream = client.tail_job_logs(job_id)
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(stream.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.close()


def job_status(address: str, job_id: str) -> str:
    """The job's state: PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED."""
    return _jobs(address).get_job_status(job_id).value


def stop_job(address: str, job_id: str) -> bool:
    """Ask the cluster to stop a job: Ray sends its driver SIGTERM (ours then marks its running
    runs KILLED and exits) and SIGKILL if it is still there STOP_GRACE_S later. Returns
    whether the job was still running.

    Raises:
        ClusterError: no such job, or nothing answers at `address`.
    """
    try:
        return _jobs(address).stop_job(job_id)
    except RuntimeError as e:
        raise ClusterError(f"cannot stop job {job_id!r} at {address}: {e}") from e


def wait_job(address: str, job_id: str, timeout: float) -> str:
    """Poll the job until it has ended or `timeout` seconds passed; returns its last state."""
    client, deadline = _jobs(address), time.monotonic() + timeout
    while True:
        state = client.get_job_status(job_id)
        if state.is_terminal() or time.monotonic() > deadline:
            return state.value
        time.sleep(1)
