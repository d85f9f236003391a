"""The run lifecycle: the sweep's experiment and run, a job's or cell's run opened (or
reopened) and closed, the driver's heartbeat, and runs a lost driver left RUNNING."""

from __future__ import annotations

import getpass
import os
import platform
import time
import traceback
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from mlflow.entities import Param, RunTag
from mlflow.utils.mlflow_tags import (
    MLFLOW_GIT_BRANCH,
    MLFLOW_GIT_COMMIT,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
    MLFLOW_USER,
)
from pydantic import BaseModel, ConfigDict

from orchestrator import processes
from orchestrator.record.schema import (
    ATTEMPT,
    EXPERIMENT_KIND,
    HEARTBEAT,
    KEY,
    KIND,
    PARENT,
    SWEEP,
    TAG,
)
from orchestrator.record.store import client, log_batch, param_text, retry, search


class Tracking(BaseModel):
    """Where a sweep is recorded: handed to every worker, explicitly."""

    model_config = ConfigDict(frozen=True)
    uri: str
    experiment_id: str
    sweep_run_id: str
    system_metrics: bool = True  # the spec's `system_metrics`: jobs sample their machine
    tags: dict[str, str] = {}  # on the experiment and every run of the sweep (a smoke run's mark)


def open_sweep(
    name: str, uri: str, artifacts: Mapping[str, str], system_metrics: bool = True,
    tags: Mapping[str, str] | None = None,
) -> Tracking:
    """The sweep's experiment and parent run, created if new and set RUNNING; before any worker.
    `artifacts` (file name -> text: the spec, the planned cells) are written on the sweep run;
    `tags` go on the experiment it creates and on every run."""
    c, tags = client(uri), dict(tags or {})
    experiment = retry(c.get_experiment_by_name, name)
    if experiment is None:
        location = None
        if uri.startswith("sqlite:///"):  # artifacts beside the database file
            location = (Path(uri[len("sqlite:///") :]).parent / "mlruns" / name).as_uri()
        experiment_id = retry(
            c.create_experiment, name, artifact_location=location, tags={**EXPERIMENT_KIND, **tags}
        )
    else:
        experiment_id = experiment.experiment_id
    runs = search(uri, experiment_id, f"tags.`{KIND}` = '{SWEEP}'")
    if runs:
        run_id = runs[0].info.run_id
        retry(c.update_run, run_id, status="RUNNING")
        log_batch(c, run_id, tags=[RunTag(k, v) for k, v in {**environment(), **tags}.items()])  # who runs it now
    else:
        run = retry(c.create_run, experiment_id, run_name=name, tags={KIND: SWEEP, **environment(), **tags})
        run_id = run.info.run_id
    for name_, text in artifacts.items():  # the plan as it stands now: the latest file wins
        retry(c.log_text, run_id, text, name_)
    return Tracking(
        uri=uri, experiment_id=experiment_id, sweep_run_id=run_id, system_metrics=system_metrics, tags=tags
    )


def close_sweep(tracking: Tracking, status: str) -> None:
    retry(client(tracking.uri).set_terminated, tracking.sweep_run_id, status)


def environment() -> dict[str, str]:
    """Provenance, recorded as tags on every run (mutable facts are tags): who ran it and from
    which code (MLflow's own `mlflow.user`, `mlflow.source.*` tags, which its UI shows), the
    versions, the machine."""
    tags = {TAG + "host": platform.node(), TAG + "python": platform.python_version()}
    if node := os.environ.get("MONOSWEEP_RAY_NODE"):
        tags[TAG + "ray_node"] = node
    return {**_source(), **tags, **_versions()}


# The checkout the code runs from, if it is one: the folder holding orchestrator/ (an installed
# package's site-packages has no .git, and an enclosing repository is not ours).
SOURCE_ROOT = Path(__file__).resolve().parents[2]


@cache
def _source() -> dict[str, str]:
    """The OS user, the entry point and the git commit and branch of the code, once per process."""
    tags = {MLFLOW_SOURCE_NAME: "monosweep", MLFLOW_SOURCE_TYPE: "JOB"}
    try:
        tags[MLFLOW_USER] = getpass.getuser()
    except (KeyError, OSError):  # a container's uid without a passwd entry or $USER
        pass
    if head := git_head(SOURCE_ROOT):
        tags[MLFLOW_GIT_COMMIT] = head[0]
        if head[1]:
            tags[MLFLOW_GIT_BRANCH] = head[1]
    return tags


def git_head(root: Path) -> tuple[str, str | None] | None:
    """(commit, branch or None when detached) of the git checkout at `root`, read from its
    .git files without a git binary (a worker image may have none); None where `root` is not a
    checkout or its refs cannot be read (git's newer reftable format, say)."""
    try:
        dot = root / ".git"
        if not dot.exists():
            return None
        # A linked worktree's or submodule's .git is a file naming its folder, whose HEAD is its
        # own while refs live in the main repository's folder (`commondir`).
        git = dot if dot.is_dir() else root / dot.read_text().split("gitdir:", 1)[1].strip()
        common = git / (git / "commondir").read_text().strip() if (git / "commondir").is_file() else git
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return (head, None) if _is_commit(head) else None
        ref = head.removeprefix("ref: ")
        branch = ref.removeprefix("refs/heads/")
        for folder in (git, common):
            if (folder / ref).is_file():
                commit = (folder / ref).read_text().strip()
                return (commit, branch) if _is_commit(commit) else None
        if (common / "packed-refs").is_file():  # refs `git gc` packed into one file
            for line in (common / "packed-refs").read_text().splitlines():
                if line.endswith(" " + ref) and _is_commit(line.split()[0]):
                    return line.split()[0], branch
    except (OSError, IndexError, UnicodeDecodeError):
        pass
    return None


def _is_commit(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)  # sha1 or sha256


@cache
def _versions() -> dict[str, str]:
    """Installed versions, read once per process (~2 ms a read: a probe job opens 5 runs)."""
    import importlib.metadata as md

    tags = {}
    for package in ("monosweep", "torch", "torchvision", "ray", "mlflow"):
        try:
            tags[f"{TAG}version.{package}"] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return tags


class SweepStopped(BaseException):
    """The sweep's driver was stopped before this job's run began: the job does not run. A
    BaseException, like KeyboardInterrupt: the job is cancelled, not failed."""


def start_run(
    tracking: Tracking, kind: str, key: str, name: str, parent: str,
    params: Mapping[str, Any], tags: Mapping[str, str],
) -> tuple[str, int]:
    """Create the run of a job or cell, or reopen its earlier unfinished run; (run id, attempt).
    Three store calls for a new run: the search for an earlier one, create_run with its tags,
    one log_batch of its params and its key (a run that dies before that has no key: it is
    never found as this job's, and the sweep's end marks it KILLED).

    The run is RUNNING first, then the sweep run is read: a driver that is cancelling marks
    the sweep run KILLED before its last pass over RUNNING runs, so either that pass sees this
    run, or this check sees the sweep stopped, and the run is marked KILLED here.

    Raises:
        SweepStopped: the sweep run is no longer RUNNING.
    """
    c = client(tracking.uri)
    earlier = search(tracking.uri, tracking.experiment_id, f"tags.`{KEY}` = '{key}'")
    attempt = int(earlier[0].data.tags.get(ATTEMPT, "1")) + 1 if earlier else 1
    all_tags = {KIND: kind, ATTEMPT: str(attempt), PARENT: parent, **environment(), **tracking.tags, **tags}
    if earlier:
        run_id = earlier[0].info.run_id
        retry(c.update_run, run_id, status="RUNNING")
        log_batch(c, run_id, tags=[RunTag(k, v) for k, v in {**all_tags, KEY: key}.items()])
    else:
        run = retry(c.create_run, tracking.experiment_id, run_name=name, tags=all_tags)
        run_id = run.info.run_id
        # An axis a method ignores (random: images, augmentation) is left out, not "null".
        values = [Param(k, param_text(v)) for k, v in params.items() if v is not None]
        log_batch(c, run_id, params=values, tags=[RunTag(KEY, key)])
    if (sweep := retry(c.get_run, tracking.sweep_run_id).info.status) != "RUNNING":
        retry(c.set_tag, run_id, TAG + "error", f"cancelled: the sweep run is {sweep}")
        retry(c.set_terminated, run_id, "KILLED")
        raise SweepStopped(f"the sweep run {tracking.sweep_run_id} is {sweep}")
    return run_id, attempt


def end_run(uri: str, run_id: str, error: BaseException | None = None) -> None:
    """FINISHED; FAILED with the error's class, message and traceback; KILLED when interrupted."""
    c = client(uri)
    if error is None:
        retry(c.set_terminated, run_id, "FINISHED")
        return
    killed = not isinstance(error, Exception)  # KeyboardInterrupt, SystemExit: cancelled
    message = str(error).strip().splitlines()[0][:500] if str(error).strip() else ""
    tags = {TAG + "error_class": type(error).__name__, TAG + "error": message}
    if reason := getattr(error, "reason", None):
        tags[TAG + "failure_reason"] = reason
    retry(c.log_batch, run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    retry(c.log_text, run_id, text, "traceback.txt")
    retry(c.set_terminated, run_id, "KILLED" if killed else "FAILED")


BEAT_EVERY = 10.0  # seconds between a driver's heartbeats
DRIVER_TIMEOUT = 60.0  # seconds without a heartbeat after which a driver counts as lost


def heartbeat(tracking: Tracking) -> None:
    """The driver is alive: stamp the sweep run with the time, its host and its process id."""
    beat = f"{int(time.time())} {platform.node()} {os.getpid()}"
    retry(client(tracking.uri).set_tag, tracking.sweep_run_id, HEARTBEAT, beat)


def live_driver(uri: str, experiment: str | None, timeout: float = DRIVER_TIMEOUT) -> float | None:
    """Seconds since the sweep's driver last beat, if it is RUNNING, beat within `timeout`,
    and (on this host) its process still exists."""
    if experiment is None:
        return None
    running = f"tags.`{KIND}` = '{SWEEP}' and attributes.status = 'RUNNING'"
    for run in search(uri, experiment, running):
        stamp, host, pid = (run.data.tags.get(HEARTBEAT, "0 ? 0").split() + ["?", "0"])[:3]
        age = time.time() - float(stamp)
        if age < timeout and not (host == platform.node() and not processes.alive(int(pid))):
            return age
    return None


def kill_running(uri: str, experiment: str | None, reason: str) -> int:
    """Mark every RUNNING job run of the sweep KILLED (a lost or cancelled driver); the count."""
    if experiment is None:
        return 0
    c, killed = client(uri), 0
    for run in search(uri, experiment, "attributes.status = 'RUNNING'"):
        if run.data.tags.get(KIND) == SWEEP:
            continue
        retry(c.set_tag, run.info.run_id, TAG + "error", reason)
        retry(c.set_terminated, run.info.run_id, "KILLED")
        killed += 1
    return killed
