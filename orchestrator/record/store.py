"""Talking to the MLflow store: where it is, whether it is there, the client, the retry
policy every call goes through, search, batched writes and artifacts.

Nothing here knows monosweep's tags; `queries` and `runs` build on it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from orchestrator.errors import StoreUnreachable

T = TypeVar("T")
# Words in a store error that say it may pass: a locked SQLite file, a server restarting.
TRANSIENT = ("locked", "connection", "timeout", "temporarily", "503", "502")


def shown(uri: str) -> str:
    """The URI as it may be printed: without a user or password."""
    scheme, sep, rest = uri.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}{sep}{host.rpartition('@')[2]}{slash}{path}" if sep else uri


# Where `mlflow ui` / `mlflow server` listen by default: the link for a store that is a file.
LOCAL_UI = "http://127.0.0.1:5000"


def ui_link(uri: str, experiment_id: str, run_id: str | None = None) -> str:
    """The MLflow UI's page of the experiment's training runs (or of one run): the tracking
    server's own address where the store is one, else a local `mlflow ui`'s. The query after
    the hash route is what MLflow 3's UI reads (`WorkflowTypeProvider`, from the router's
    search params): without it a fresh browser opens the experiment in the GenAI view, with
    it in the table of training runs."""
    base = shown(uri).rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_UI
    page = f"runs/{run_id}" if run_id else "runs"
    return f"{base}/#/experiments/{experiment_id}/{page}?workflowType=machine_learning"


def ui_line(uri: str, experiment_id: str) -> str:
    """`training runs: LINK`, with the command that serves a store that is not a server."""
    link = ui_link(uri, experiment_id)
    if uri.startswith(("http://", "https://")):
        return f"training runs: {link}"
    return f"training runs: {link} (serve them: mlflow ui --backend-store-uri {shown(uri)})"


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
            raise StoreUnreachable(
                f"tracking_uri: cannot reach the MLflow server at {shown(uri)} ({reason}); {hint}"
            ) from None
    elif uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///") :]).parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise StoreUnreachable(
                f"tracking_uri: {uri}: the folder {folder} does not exist or is not writable"
            )


def client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def retry(call: Callable[..., T], *args: Any, tries: int = 6, **kwargs: Any) -> T:
    """Retry transient store errors (a locked SQLite file, a server restarting) with backoff."""
    for attempt in range(tries):
        try:
            return call(*args, **kwargs)
        except (MlflowException, OSError) as e:
            transient = any(w in str(e).lower() for w in TRANSIENT)
            if not transient or attempt == tries - 1:
                raise
            time.sleep(min(0.5 * 2**attempt, 10))
    raise AssertionError("unreachable")


def search(uri: str, experiment_id: str, filter_string: str) -> list[Any]:
    """All matching runs, newest first, a page (up to 50,000 runs) per query."""
    c, runs, token = client(uri), [], None
    while True:
        page = retry(
            c.search_runs, [experiment_id], filter_string, ViewType.ACTIVE_ONLY, 50_000,
            ["attributes.start_time DESC"], token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def experiment_id(uri: str, name: str) -> str | None:
    experiment = retry(client(uri).get_experiment_by_name, name)
    return experiment.experiment_id if experiment else None


def log_batch(
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
        retry(c.log_batch, run_id, metrics=m, params=p, tags=t)
        metrics, params, tags = metrics[len(m) :], params[len(p) :], tags[len(t) :]


def param_text(value: Any) -> str:
    """A param's value as MLflow stores it: a string as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def download(uri: str, run_id: str, path: str, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    return Path(retry(client(uri).download_artifacts, run_id, path, str(dst)))


def read_text(uri: str, run_id: str, name: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        return download(uri, run_id, name, Path(tmp)).read_text()


def artifact_names(uri: str, run_id: str) -> set[str]:
    return {a.path for a in retry(client(uri).list_artifacts, run_id)}


def log_files(uri: str, run_id: str, folder: Path, artifact_path: str) -> None:
    retry(client(uri).log_artifacts, run_id, str(folder), artifact_path)


def log_table(uri: str, run_id: str, columns: dict[str, list[Any]], artifact_file: str) -> None:
    """A table (column -> values) as an MLflow table artifact (`log_table`: JSON the UI shows
    as a table), replacing the file's earlier table: `log_table` appends to a file that
    exists, so a second report would double every row; that file is rewritten instead, in
    `log_table`'s own format (pandas' split JSON), and stays registered as a table."""
    c = client(uri)
    folder = artifact_file.rpartition("/")[0] or None
    if artifact_file not in {a.path for a in retry(c.list_artifacts, run_id, folder)}:
        retry(c.log_table, run_id, columns, artifact_file)
        return
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / artifact_file.rpartition("/")[2]
        pd.DataFrame(columns).to_json(path, orient="split", index=False, date_format="iso")
        retry(c.log_artifact, run_id, str(path), folder)
