"""The one module that talks to MLflow: the sweep's experiment and runs, queries, statuses.

MLflow is the system of record. Hierarchy (through `mlflow.parentRunId`): sweep run ->
pretrain runs -> cell runs, one per cell, of kind `probe` whatever their evaluation (linear
probe, finetuning, style transfer: the `evaluation` param says; the kind's name predates the
axis and stays, so stores recorded before count their runs). Keys, kind and attempt are tags; a job that ran
before and did not finish reopens its run (attempt + 1) rather than adding a second one.
Every call goes through `_retry`, so a busy SQLite file or a blinking server costs a wait,
not a result.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mlflow.entities import LifecycleStage, Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, ConfigDict

from orchestrator.errors import StoreUnreachable

if TYPE_CHECKING:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

T = TypeVar("T")

TAG = "monosweep."
KIND, KEY, ATTEMPT = TAG + "kind", TAG + "key", TAG + "attempt"
PARENT = "mlflow.parentRunId"
# MLflow 3 opens an experiment in its GenAI view unless it is marked as model training.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


class Tracking(BaseModel):
    """Where a sweep is recorded: handed to every worker, explicitly."""

    model_config = ConfigDict(frozen=True)
    uri: str
    experiment_id: str
    sweep_run_id: str


def resolve_uri(uri: str) -> str:
    """MLFLOW_TRACKING_URI wins; a relative SQLite path becomes absolute, so Ray workers
    (whose working folder differs) write to the same file."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", uri)
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def _retry(call: Callable[..., T], *args: Any, tries: int = 6, **kwargs: Any) -> T:
    """Retry transient store errors (a locked SQLite file, a server restarting) with backoff."""
    for attempt in range(tries):
        try:
            return call(*args, **kwargs)
        except (MlflowException, OSError) as e:
            transient = any(w in str(e).lower() for w in ("locked", "connection", "timeout", "temporarily", "503", "502"))
            if not transient or attempt == tries - 1:
                raise
            time.sleep(min(0.5 * 2**attempt, 10))
    raise AssertionError("unreachable")


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast (MLflow's own retries take minutes) when the store is not there.

    Raises:
        StoreUnreachable: with the URI and what to do about it.
    """
    hint = "start it (`mlflow server ...`) or fix tracking_uri / MLFLOW_TRACKING_URI"
    if uri.startswith(("http://", "https://")):
        import requests

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=timeout)
        except requests.RequestException as e:
            reason = type(e).__name__
            raise StoreUnreachable(f"tracking_uri: cannot reach the MLflow server at {shown(uri)} ({reason}); {hint}") from None
    elif uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///") :]).parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise StoreUnreachable(f"tracking_uri: {uri}: the folder {folder} does not exist or is not writable")


def shown(uri: str) -> str:
    """The URI as it may be printed: without a user or password."""
    scheme, sep, rest = uri.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}{sep}{host.rpartition('@')[2]}{slash}{path}" if sep else uri


def client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def open_sweep(name: str, uri: str, artifacts: Mapping[str, str]) -> Tracking:
    """The sweep's experiment and parent run, created if new and set RUNNING; before any worker.
    `artifacts` (file name -> text: the spec, the planned cells) are written on the sweep run."""
    c = client(uri)
    experiment = _retry(c.get_experiment_by_name, name)
    if experiment is None:
        location = None
        if uri.startswith("sqlite:///"):  # artifacts beside the database file
            location = (Path(uri[len("sqlite:///") :]).parent / "mlruns" / name).as_uri()
        experiment_id = _retry(c.create_experiment, name, artifact_location=location, tags=EXPERIMENT_KIND)
    else:
        experiment_id = experiment.experiment_id
    runs = search(uri, experiment_id, f"tags.`{KIND}` = 'sweep'")
    if runs:
        run_id = runs[0].info.run_id
        _retry(c.update_run, run_id, status="RUNNING")
    else:
        run = _retry(c.create_run, experiment_id, run_name=name, tags={KIND: "sweep", **environment()})
        run_id = run.info.run_id
    for name_, text in artifacts.items():  # the plan as it stands now: the latest file wins
        _retry(c.log_text, run_id, text, name_)
    return Tracking(uri=uri, experiment_id=experiment_id, sweep_run_id=run_id)


def close_sweep(tracking: Tracking, status: str) -> None:
    _retry(client(tracking.uri).set_terminated, tracking.sweep_run_id, status)


def search(uri: str, experiment_id: str, filter_string: str) -> list[Any]:
    """All matching runs, newest first, a page (up to 50,000 runs) per query."""
    c, runs, token = client(uri), [], None
    while True:
        page = _retry(
            c.search_runs, [experiment_id], filter_string, ViewType.ACTIVE_ONLY, 50_000,
            ["attributes.start_time DESC"], token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def experiment_id(uri: str, name: str) -> str | None:
    experiment = _retry(client(uri).get_experiment_by_name, name)
    return experiment.experiment_id if experiment else None


def finished(uri: str, experiment: str | None, kind: str) -> dict[str, str]:
    """Key -> run id of the active FINISHED runs of one kind (the newest, where a key has several).

    On a SQL store (SQLite, PostgreSQL, MySQL) one query reads only the run ids and keys, from
    MLflow's own tables: the runs' status and deletion are read where MLflow keeps them, so the
    answer is as true as `search_runs`', without building each run with all its params, tags
    and metrics (~1 ms a run: 12 s of a 10,000-cell sweep's planning). Other stores (a tracking
    server) answer through `search_runs`."""
    if experiment is None:
        return {}
    store = _sql_store(uri)
    if store is None:
        return searched_finished(uri, experiment, kind)
    return _retry(_finished_in_sql, store, experiment, kind)


def searched_finished(uri: str, experiment: str, kind: str) -> dict[str, str]:
    """`finished` through `search_runs`: any store, ~1 ms of client CPU per run."""
    runs = search(uri, experiment, f"tags.`{KIND}` = '{kind}' and attributes.status = 'FINISHED'")
    return {r.data.tags[KEY]: r.info.run_id for r in reversed(runs)}  # newest wins


def _sql_store(uri: str) -> SqlAlchemyStore | None:
    """The client's store where it is MLflow's SQLAlchemy store (a database URI), else None."""
    # Imported here: a database URI's client has loaded it already; a server's needs none of it.
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = getattr(getattr(client(uri), "_tracking_client", None), "store", None)
    return store if isinstance(store, SqlAlchemyStore) else None


def _finished_in_sql(store: SqlAlchemyStore, experiment: str, kind: str) -> dict[str, str]:
    """`finished` as one SELECT of (run id, key) over MLflow's `runs` and `tags` tables."""
    from mlflow.store.tracking.dbmodels.models import SqlRun, SqlTag
    from sqlalchemy import and_
    from sqlalchemy.orm import aliased

    kind_tag, key_tag = aliased(SqlTag), aliased(SqlTag)
    with store.ManagedSessionMaker() as session:
        rows = (
            session.query(SqlRun.run_uuid, key_tag.value)
            .join(kind_tag, and_(kind_tag.run_uuid == SqlRun.run_uuid, kind_tag.key == KIND))
            .join(key_tag, and_(key_tag.run_uuid == SqlRun.run_uuid, key_tag.key == KEY))
            .filter(
                SqlRun.experiment_id == int(experiment),
                SqlRun.status == "FINISHED",
                SqlRun.lifecycle_stage == LifecycleStage.ACTIVE,
                kind_tag.value == kind,
            )
            # search_runs' order reversed (it sorts newest first, ties by run id): newest wins.
            .order_by(SqlRun.start_time, SqlRun.run_uuid.desc())
            .all()
        )
    return {key: run_id for run_id, key in rows}


def environment() -> dict[str, str]:
    """Versions and machine, recorded as tags on every run (mutable facts are tags)."""
    tags = {TAG + "host": platform.node(), TAG + "python": platform.python_version()}
    if node := os.environ.get("MONOSWEEP_RAY_NODE"):
        tags[TAG + "ray_node"] = node
    return {**tags, **_versions()}


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


def start_run(
    tracking: Tracking, kind: str, key: str, name: str, parent: str, params: Mapping[str, Any], tags: Mapping[str, str]
) -> tuple[str, int]:
    """Create the run of a job or cell, or reopen its earlier unfinished run; (run id, attempt).
    Three store calls for a new run: the search for an earlier one, create_run with its tags,
    one log_batch of its params and its key (a run that dies before that has no key: it is
    never found as this job's, and the sweep's end marks it KILLED)."""
    c = client(tracking.uri)
    earlier = search(tracking.uri, tracking.experiment_id, f"tags.`{KEY}` = '{key}'")
    attempt = int(earlier[0].data.tags.get(ATTEMPT, "1")) + 1 if earlier else 1
    all_tags = {KIND: kind, ATTEMPT: str(attempt), PARENT: parent, **environment(), **tags}
    if earlier:
        run_id = earlier[0].info.run_id
        _retry(c.update_run, run_id, status="RUNNING")
        _log_batch(c, run_id, tags=[RunTag(k, v) for k, v in {**all_tags, KEY: key}.items()])
    else:
        run = _retry(c.create_run, tracking.experiment_id, run_name=name, tags=all_tags)
        run_id = run.info.run_id
        # An axis a method ignores (random: images, augmentation) is left out, not "null".
        values = [Param(k, _text(v)) for k, v in params.items() if v is not None]
        _log_batch(c, run_id, params=values, tags=[RunTag(KEY, key)])
    return run_id, attempt


def _log_batch(
    c: MlflowClient,
    run_id: str,
    metrics: Sequence[Metric] = (),
    params: Sequence[Param] = (),
    tags: Sequence[RunTag] = (),
) -> None:
    """One log_batch, or as many as MLflow's limits per call (1,000 values, of which at most
    100 params and 100 tags) require; tags go with the last params (MLflow writes a call's
    params before its tags), so a run's key is never stored before all its params."""
    metrics, params, tags = list(metrics), list(params), list(tags)
    while metrics or params or tags:
        p = params[:100]
        t = tags[:100] if len(params) <= 100 else []
        m = metrics[: 1000 - len(p) - len(t)]
        _retry(c.log_batch, run_id, metrics=m, params=p, tags=t)
        metrics, params, tags = metrics[len(m) :], params[len(p) :], tags[len(t) :]


HEARTBEAT = TAG + "driver_heartbeat"


def heartbeat(tracking: Tracking) -> None:
    """The driver is alive: stamp the sweep run with the time, its host and its process id."""
    beat = f"{int(time.time())} {platform.node()} {os.getpid()}"
    _retry(client(tracking.uri).set_tag, tracking.sweep_run_id, HEARTBEAT, beat)


def live_driver(uri: str, experiment: str | None, timeout: float) -> float | None:
    """Seconds since the sweep's driver last beat, if it is RUNNING, beat within `timeout`,
    and (on this host) its process still exists."""
    if experiment is None:
        return None
    for run in search(uri, experiment, f"tags.`{KIND}` = 'sweep' and attributes.status = 'RUNNING'"):
        stamp, host, pid = (run.data.tags.get(HEARTBEAT, "0 ? 0").split() + ["?", "0"])[:3]
        age = time.time() - float(stamp)
        if age < timeout and not (host == platform.node() and not _alive(int(pid))):
            return age
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def kill_running(uri: str, experiment: str | None, reason: str) -> int:
    """Mark every RUNNING job run of the sweep KILLED (a lost or cancelled driver); the count."""
    if experiment is None:
        return 0
    c, killed = client(uri), 0
    for run in search(uri, experiment, "attributes.status = 'RUNNING'"):
        if run.data.tags.get(KIND) == "sweep":
            continue
        _retry(c.set_tag, run.info.run_id, TAG + "error", reason)
        _retry(c.set_terminated, run.info.run_id, "KILLED")
        killed += 1
    return killed


def end_run(uri: str, run_id: str, error: BaseException | None = None) -> None:
    """FINISHED; FAILED with the error's class, message and traceback; KILLED when interrupted."""
    c = client(uri)
    if error is None:
        _retry(c.set_terminated, run_id, "FINISHED")
        return
    killed = not isinstance(error, Exception)  # KeyboardInterrupt, SystemExit: cancelled
    message = str(error).strip().splitlines()[0][:500] if str(error).strip() else ""
    tags = {TAG + "error_class": type(error).__name__, TAG + "error": message}
    if reason := getattr(error, "reason", None):
        tags[TAG + "failure_reason"] = reason
    _retry(c.log_batch, run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    _retry(c.log_text, run_id, text, "traceback.txt")
    _retry(c.set_terminated, run_id, "KILLED" if killed else "FAILED")


def download(uri: str, run_id: str, path: str, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    return Path(_retry(client(uri).download_artifacts, run_id, path, str(dst)))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# A run's params, metrics and tags reach the store at most this often (and before each of its
# artifacts, and when it ends): a write costs 3-30 ms on SQLite, and a probe job's five runs
# writing every epoch of a small job spent a third of its time there.
WRITE_EVERY_S = 5.0


@dataclass
class _Unwritten:
    """What a run has been given and the store has not yet."""

    params: dict[str, str] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    written: float = field(default_factory=time.monotonic)  # when the store last heard of it


class MlflowRecorder:
    """The compute core's Recorder, writing to runs: `None` -> the job's run, a layer ->
    that cell's run. Values are buffered per run and written in one log_batch at most every
    WRITE_EVERY_S seconds, before the run's artifacts (so a checkpoint's steps are stored
    before it) and by `end`. The 5 s are checked when the run is next given a value, so a
    process killed outright loses what came since the last write: up to one logging interval
    (20 steps, an epoch) plus 5 s, which a resumed attempt logs again from its checkpoint."""

    def __init__(self, uri: str, runs: Mapping[str | None, str]):
        self.uri, self.client, self.runs = uri, client(uri), runs
        self.unwritten = {run_id: _Unwritten() for run_id in runs.values()}

    def _targets(self, layer: str | None) -> list[str]:
        return [self.runs[layer]] if layer in self.runs else list(self.runs.values())

    def params(self, values: Mapping[str, Any], layer: str | None = None) -> None:
        for run_id in self._targets(layer):
            self.unwritten[run_id].params.update((k, _text(v)) for k, v in values.items())
            self._write_if_due(run_id)

    def metrics(self, values: Mapping[str, float], step: int, layer: str | None = None) -> None:
        now = int(time.time() * 1000)  # the time it was measured, whenever it is written
        batch = [Metric(k, float(v), now, step) for k, v in values.items()]
        for run_id in self._targets(layer):
            self.unwritten[run_id].metrics += batch
            self._write_if_due(run_id)

    def tag(self, name: str, value: str, layer: str | None = None) -> None:
        for run_id in self._targets(layer):
            self.unwritten[run_id].tags[TAG + name] = value
            self._write_if_due(run_id)

    def artifact(self, path: Path, layer: str | None = None) -> None:
        for run_id in self._targets(layer):
            self._write(run_id)
            _retry(self.client.log_artifact, run_id, str(path))

    def text(self, text: str, name: str, layer: str | None = None) -> None:
        for run_id in self._targets(layer):
            self._write(run_id)
            _retry(self.client.log_text, run_id, text, name)

    def flush(self) -> None:
        """Write everything buffered, now."""
        for run_id in self.unwritten:
            self._write(run_id)

    def end(self, error: BaseException | None = None) -> None:
        """Write what is buffered, then close every run (`end_run`: FINISHED, or FAILED or
        KILLED with the error). Where the values cannot be written, a job that succeeded
        raises and leaves its runs RUNNING (a retry reopens them); a failed job's runs are still
        marked with its own error."""
        if error is None:
            self.flush()
        else:
            for run_id in self.unwritten:  # one run's failed write must not cost the others theirs
                with contextlib.suppress(Exception):
                    self._write(run_id)
        for run_id in self.unwritten:
            end_run(self.uri, run_id, error)

    def _write_if_due(self, run_id: str) -> None:
        if time.monotonic() - self.unwritten[run_id].written >= WRITE_EVERY_S:
            self._write(run_id)

    def _write(self, run_id: str) -> None:
        u = self.unwritten[run_id]
        params = [Param(k, v) for k, v in u.params.items()]
        tags = [RunTag(k, v) for k, v in u.tags.items()]
        _log_batch(self.client, run_id, u.metrics, params, tags)
        self.unwritten[run_id] = _Unwritten()


@dataclass(frozen=True)
class RunView:
    """What reports and status need of a run, as plain data."""

    run_id: str
    name: str
    key: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    start_time: int | None
    end_time: int | None


def latest_runs(uri: str, experiment: str | None, kind: str) -> dict[str, RunView]:
    """Key -> its run (one query): the latest FINISHED one, else the latest of any status."""
    if experiment is None:
        return {}
    views: dict[str, RunView] = {}
    for r in search(uri, experiment, f"tags.`{KIND}` = '{kind}'"):  # newest first
        key = r.data.tags.get(KEY)
        if key is None or (key in views and views[key].status == "FINISHED"):
            continue
        if key not in views or r.info.status == "FINISHED":
            views[key] = RunView(
                r.info.run_id, r.info.run_name, key, r.info.status, dict(r.data.params),
                dict(r.data.metrics), dict(r.data.tags), r.info.start_time, r.info.end_time,
            )
    return views


def sweep_run_id(uri: str, experiment: str) -> str | None:
    runs = search(uri, experiment, f"tags.`{KIND}` = 'sweep'")
    return runs[0].info.run_id if runs else None


def read_text(uri: str, run_id: str, name: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        return download(uri, run_id, name, Path(tmp)).read_text()


def artifact_names(uri: str, run_id: str) -> set[str]:
    return {a.path for a in _retry(client(uri).list_artifacts, run_id)}


def log_files(uri: str, run_id: str, folder: Path, artifact_path: str) -> None:
    _retry(client(uri).log_artifacts, run_id, str(folder), artifact_path)
