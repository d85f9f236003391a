"""Real services for tests, as separate processes (started and stopped with
tests/processes.py): an `mlflow server` (plain, or with the basic-auth app on PostgreSQL or
SQLite), a private PostgreSQL, Ray nodes started with `ray start`; and the cluster's pieces
as fixtures, which tests/conftest.py makes available to every test module.
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
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.processes import Processes, base_env, members, stop_session, wait_for

BIN = Path(sys.executable).parent
# Loopback addresses, one per node; not 127.0.0.1, which `ray start` swaps for the LAN address.
HEAD_IP, NODE_IP, LOST_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4"
# The MLflow credentials of a test session: they must never be recorded.
USER = "sweeper"
PASSWORD = secrets.token_urlsafe(18)


def free_port(taken: set[int] | None = None) -> int:
    """A free loopback port; one not in `taken`, which it joins, when given."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if taken is None or port not in taken:
            if taken is not None:
                taken.add(port)
            return port


def http_status(url: str, auth: tuple[str, str] | None = None) -> int:
    """The HTTP status of a GET, 0 when nothing answers."""
    request = urllib.request.Request(url)
    if auth:
        import base64

        token = base64.b64encode(":".join(auth).encode()).decode()
        request.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return 0


# ---------------------------------------------------------------------------------------------
# MLflow servers.


class MlflowServer:
    """`mlflow server` on 127.0.0.1 over a backend store; stop() and start() again keep the
    port and the store, as a restart by an operator would."""

    def __init__(self, backend: str, folder: Path):
        self.backend, self.folder, self.port = backend, folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "mlflow-server.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> MlflowServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        self.process = subprocess.Popen(
            [BIN / "mlflow", "server", "--backend-store-uri", self.backend, "--host", "127.0.0.1",
             "--port", str(self.port),
             "--workers", "1",  # one process: starts fast on a small machine
             "--artifacts-destination", (self.folder / "artifacts").as_uri(), "--serve-artifacts"],
            env=env, stdout=self.log.open("a"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-2000:]
            try:
                if requests.get(self.url + "/health", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"mlflow server did not answer on {self.url}")

    def stop(self) -> None:
        if self.process is not None:
            stop_session(self.process)


@dataclass
class AuthServer:
    """An `mlflow server` with the basic-auth app and proxied artifacts."""

    url: str
    backend: str
    artifacts: Path
    startup_s: float


def start_auth_server(
    processes: Processes, ports: set[int], folder: Path, backend: str
) -> AuthServer:
    """`mlflow server --app-name basic-auth` on a `postgresql` or `sqlite` backend, its admin
    USER with PASSWORD, artifacts served from `folder`."""
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
    env.update({
        "MLFLOW_AUTH_CONFIG_PATH": str(auth),
        "MLFLOW_AUTH_ADMIN_USERNAME": USER,
        "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,  # bootstraps the admin user on the first start
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # GenAI job runners: not needed here
    })
    name = f"mlflow-{backend}"
    processes.start(name, [
        str(BIN / "mlflow"), "server", "--app-name", "basic-auth", "--backend-store-uri", store,
        "--serve-artifacts", "--artifacts-destination", str(folder / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
    ], env)
    url = f"http://127.0.0.1:{port}"
    wait_for("mlflow server", lambda: http_status(f"{url}/health") == 200, 120, processes, name)
    return AuthServer(url, backend, folder / "artifacts", time.monotonic() - started)


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
        [bindir / "initdb", "-D", data, "-U", "mlflow", f"--pwfile={pwfile}",
         "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"],
        user=user, check=True, capture_output=True,
    )
    port = free_port(ports)
    processes.start(
        "postgres",
        [str(bindir / "postgres"), "-D", str(data), "-p", str(port),
         "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={folder}",
         "-c", "fsync=off"],
        base_env(), stop=signal.SIGINT, user=user,  # SIGINT: fast shutdown, clients or not
    )
    ready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
    wait_for("PostgreSQL", lambda: subprocess.run(ready).returncode == 0, 30, processes, "postgres")
    for database in ("mlflow", "mlflow_auth"):
        subprocess.run(
            [str(bindir / "psql"), "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow",
             "-d", "postgres", "-c", f"CREATE DATABASE {database}"],
            env={**base_env(), "PGPASSWORD": password}, check=True, capture_output=True,
        )
    return f"postgresql+psycopg://mlflow@127.0.0.1:{port}/mlflow", password


# ---------------------------------------------------------------------------------------------
# Ray nodes.


@dataclass
class RayCluster:
    address: str
    env: dict[str, str]  # what a process needs to join: the token of Ray's authentication
    nodes: dict[str, str]  # custom resource (node_a on the head, node_b) -> Ray node id
    startup_s: float


def ray_start(
    processes: Processes, ports: set[int], name: str, env: dict[str, str], *args: str
) -> None:
    """`ray start` with one CPU, no GPU, every port free; returns once the node is up."""
    ports_ = [
        f"--{flag}={free_port(ports)}"
        for flag in ("node-manager-port", "object-manager-port", "dashboard-agent-grpc-port",
                     "dashboard-agent-listen-port", "metrics-export-port", "runtime-env-agent-port")
    ]
    argv = [
        str(BIN / "ray"), "start", *args, "--num-cpus", "1", "--num-gpus", "0",
        "--disable-usage-stats", "--log-style", "record", "--object-store-memory", str(100 * 2**20),
        "--min-worker-port", "0", "--max-worker-port", "0",  # any free port
        *ports_,
    ]
    proc = processes.start(name, argv, env, ray=True)
    if proc.wait(timeout=90) != 0:
        pytest.fail(f"`ray start` for {name} failed:\n{processes.log(name)}")


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


# ---------------------------------------------------------------------------------------------
# The cluster's pieces as fixtures (module-scoped: one cluster per test module).


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
    assert not [pid for g in groups for pid in members(g)], "processes left running"


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


@pytest.fixture(scope="module")
def ray_cluster(processes: Processes, ports: set[int], scratch: Path) -> RayCluster:
    """A Ray head (resource node_a) and a second node (node_b), with token authentication."""
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
        processes, ports, "ray-head", node_env, "--head", f"--node-ip-address={HEAD_IP}",
        f"--port={gcs}", "--resources", json.dumps({"node_a": 1}), "--include-dashboard=false",
        f"--dashboard-port={free_port(ports)}", f"--temp-dir={temp}",
    )
    address = f"{HEAD_IP}:{gcs}"
    ray_start(
        processes, ports, "ray-node", node_env, f"--address={address}",
        f"--node-ip-address={NODE_IP}", "--resources", json.dumps({"node_b": 1}),
        f"--temp-dir={temp}",
    )
    nodes = alive_nodes(address, env, {"node_a", "node_b"})
    assert set(nodes) == {"node_a", "node_b"}, (
        f"cluster nodes: {nodes}\n{processes.log('ray-node')}"
    )
    assert nodes["node_a"] != nodes["node_b"]
    return RayCluster(address, env, nodes, time.monotonic() - started)


@pytest.fixture
def lost_node(ray_cluster: RayCluster, processes: Processes, ports: set[int], scratch: Path):
    """A third node (1 CPU, resource node_c) joined to the cluster for one test, which may
    kill it (its group is named `ray-node-c`); its id. Whatever is left of it is stopped
    afterwards."""
    name = "ray-node-c"
    ray_start(
        processes, ports, name, ray_cluster.env, f"--address={ray_cluster.address}",
        f"--node-ip-address={LOST_IP}", "--resources", json.dumps({"node_c": 1}),
        f"--temp-dir={scratch / 'ray'}",
    )
    nodes = alive_nodes(ray_cluster.address, ray_cluster.env, {"node_a", "node_b", "node_c"})
    assert "node_c" in nodes, f"cluster nodes: {nodes}\n{processes.log(name)}"
    yield nodes["node_c"]
    processes.kill(name)
