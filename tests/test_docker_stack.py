"""docker/ for real: the images build, and the compose stack runs sweeps (`make cluster-test`).

The stack test (marker `cluster`) makes sure a Docker daemon answers (docker/ensure-dockerd.sh
starts one as root where none runs, else the test skips saying why), builds the three images
from a local debootstrap base (docker/build-images.sh --local-base --host-pip: no image
registry is reached from here), and starts docker/compose.yaml with the `cpu` profile: a Ray
head, two Ray workers pinned to one core each, the MLflow server (basic auth, PostgreSQL,
artifacts proxied to a volume). From this machine, `monosweep submit` sends a small sweep;
then, through the server and as the sweep's non-admin user: every cell one FINISHED run, jobs
on both workers, a checkpoint and a figure downloaded through the artifact proxy, no password
in any param, tag, artifact or log. A second sweep is submitted and the MLflow and PostgreSQL
containers restart while it trains: it still finishes every cell once. Then `down` and `up`:
the record is still there (volumes). Nothing of the build's CA bundle or pip settings is in
an image (history and filesystem). Beside it, checks that need no daemon: every file a
Dockerfile copies exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import FASHION_MNIST, TINY

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
BIN = Path(sys.executable).parent
SUMMARY = Path(os.environ.get("CLUSTER_TEST_SUMMARY", "/tmp/monosweep-cluster-test.txt"))
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")

# The two sweeps: TINY (15 cells) at once; then one whose three pretrain jobs train long
# enough (4096 samples, a resume checkpoint every 20 steps) for the restarts to land mid-job.
FIRST = "docker-tiny"
SECOND = "docker-restart"
SWEEP_FILES = {
    FIRST: TINY.replace("name: tiny", f"name: {FIRST}"),
    SECOND: TINY.replace("name: tiny", f"name: {SECOND}")
    .replace(
        "method: [random, {name: rotnet, samples: 128, epochs: 1, batch_size: 32}]",
        "method: [{name: rotnet, samples: 4096, epochs: 1, batch_size: 16}]",
    )
    .replace("augmentation: [full, none]", "augmentation: [full, none, crop]")
    .replace("conv1, conv2, conv3, conv4, conv5", "conv1")
    .replace("retries: 1", "retries: 2")
    + "checkpoint_every: 20\n",
}
CELLS = {FIRST: (15, 3, 3), SECOND: (3, 3, 3)}  # cells, pretrain runs, evaluation jobs


# ---------------------------------------------------------------------------------------------
# Without a daemon: what the Dockerfile copies.


def dockerfile_sources(dockerfile: Path) -> list[str]:
    """The context paths that COPY/ADD instructions (not `--from` a stage) and RUN bind mounts
    read, joined over continuation lines."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    sources = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].upper() not in {"COPY", "ADD", "RUN"}:
            continue
        if words[0].upper() == "RUN":
            sources += re.findall(r"--mount=type=bind,(?:[^ ]*,)?source=([^, ]+)", line)
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from=") for w in words[1:]):
            continue
        if args and args[0].startswith("["):  # JSON form
            args = json.loads(" ".join(args))
        sources += args[:-1]
    return sources


def test_every_file_a_dockerfile_copies_exists():
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    dockerfiles = sorted(ROOT.rglob("Dockerfile*"))
    assert dockerfiles, "no Dockerfile found"
    for dockerfile in dockerfiles:
        sources = dockerfile_sources(dockerfile)
        assert sources, f"{dockerfile}: copies nothing?"
        for source in sources:
            assert (ROOT / source).exists(), (
                f"{dockerfile.relative_to(ROOT)} copies {source}: missing"
            )
            assert not [
                p for p in ignored if source == p or source.startswith(p.rstrip("/") + "/")
            ], f"{dockerfile.relative_to(ROOT)} copies {source}, which .dockerignore leaves out"


def test_the_copy_check_sees_a_missing_file(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM x AS a\nCOPY docker/entrypoint.sh \\\n    docker/nope.sh /usr/local/bin/\n"
        'COPY ["pyproject.toml", "/o/"]\nCOPY --from=a /x /y\n'
        "RUN --mount=type=secret,id=ca --mount=type=bind,source=workers,target=/w true\n"
    )
    assert dockerfile_sources(dockerfile) == [
        "docker/entrypoint.sh",
        "docker/nope.sh",
        "pyproject.toml",
        "workers",
    ]


# ---------------------------------------------------------------------------------------------
# The stack.


def ensure_daemon() -> str | None:
    """None when a Docker daemon answers (started here if need be), else why not."""
    result = subprocess.run(
        [str(DOCKER / "ensure-dockerd.sh")], capture_output=True, text=True, timeout=600
    )
    return None if result.returncode == 0 else (result.stderr.strip() or "no Docker daemon")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    """docker-compose (Debian's, or the v2 plugin) on docker/compose.yaml, profile cpu, under a
    project name and settings of this test's own."""

    project: str
    env: dict[str, str]
    compose: list[str]
    passwords: dict[str, str]
    shared: Path
    timings: dict[str, float] = field(default_factory=dict)  # seconds, by phase

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        result = subprocess.run(
            [*self.compose, "-p", self.project, "--profile", "cpu", *args],
            cwd=DOCKER,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert result.returncode == 0, f"compose {' '.join(args)}:\n{result.stderr[-4000:]}"
        return result.stdout + result.stderr

    def up(self) -> float:
        started = time.monotonic()
        self.run("up", "-d", "--no-build")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            states = self.health()
            if states and all(s == "healthy" for s in states.values()):
                return time.monotonic() - started
            time.sleep(3)
        pytest.fail(f"stack not healthy: {self.health()}\n{self.run('logs', '--tail=40')[-6000:]}")

    def container(self, service: str) -> str:
        return self.run("ps", "-q", service).strip()

    def started_at(self, service: str) -> str:
        """When the service's container last started, to the second (ISO time: compares as text)."""
        return subprocess.run(
            ["docker", "inspect", "--format", "{{.State.StartedAt}}", self.container(service)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()[:19]

    def health(self) -> dict[str, str]:
        ids = self.run("ps", "-q").split()
        if not ids:
            return {}
        out = subprocess.run(
            [
                "docker",
                "inspect",
                "--format",
                '{{index .Config.Labels "com.docker.compose.service"}} '
                "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
                *ids,
            ],
            capture_output=True,
            text=True,
        ).stdout
        return dict(line.split() for line in out.splitlines() if line.strip())

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.env['MLFLOW_PORT']}"

    @property
    def ray_url(self) -> str:
        return f"http://127.0.0.1:{self.env['RAY_DASHBOARD_PORT']}"


def compose_command() -> list[str] | None:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return [shutil.which("docker-compose")] if shutil.which("docker-compose") else None


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    why = ensure_daemon()
    if why:
        pytest.skip(f"no Docker daemon could be started: {why} (make cluster-test, as root)")
    if not FASHION_MNIST.is_dir():
        pytest.skip("needs Debian's dataset-fashion-mnist (make setup)")
    compose = compose_command()
    if compose is None:
        pytest.skip("no `docker compose` and no `docker-compose` (ensure-dockerd.sh installs it)")

    started = time.monotonic()
    build = subprocess.run(
        [str(DOCKER / "build-images.sh"), "--local-base", "--host-pip"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    build_s = time.monotonic() - started
    print(f"\n{build.stdout.strip()}")

    # Secrets of this run, readable by the containers' users (uid 1000 and postgres).
    work = tmp_path_factory.mktemp("stack")
    (work / "secrets").mkdir()
    passwords = {
        name: secrets.token_urlsafe(24)
        for name in (
            "postgres_password",
            "mlflow_admin_password",
            "mlflow_sweep_password",
            "mlflow_flask_secret",
            "ray_auth_token",
        )
    }
    for name, value in passwords.items():
        (work / "secrets" / name).write_text(value)
        (work / "secrets" / name).chmod(0o644)
    shared = work / "shared"
    (shared / "data").mkdir(parents=True)
    shutil.copytree(FASHION_MNIST, shared / "data" / "fashion-mnist")
    for path in [shared, *shared.rglob("*")]:
        os.chown(path, 1000, 1000)
    project = f"monosweeptest{secrets.token_hex(3)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "MLFLOW_", "RAY_"))}
    env.update(
        MLFLOW_PORT=str(free_port()),
        RAY_DASHBOARD_PORT=str(free_port()),
        RAY_CLIENT_PORT=str(free_port()),
        CLUSTER_NETWORK=f"{project}-cluster",
        SHARED_DIR=str(shared),
        RAY_SHM_SIZE="1gb",
        MLFLOW_WORKERS="2",
        MLFLOW_SWEEP_EXPERIMENTS=f"{FIRST},{SECOND}",
        SECRETS_DIR=str(work / "secrets"),
    )
    stack = Stack(project, env, compose, passwords, shared, {"build": build_s})
    try:
        stack.timings["first up"] = stack.up()
        yield stack
    finally:
        logs = stack.run("logs", "--no-color", check=False)
        (work / "compose.log").write_text(logs)
        stack.run("down", "-v", "--remove-orphans", check=False, timeout=300)


def submit(stack: Stack, name: str) -> tuple[str, Path]:
    """`monosweep submit` from this machine, as a user would: the experiment file in a folder of
    its own, the Ray token from its file; returns the job id and the folder."""
    folder = stack.shared.parent / f"sweep-{name}"
    folder.mkdir()
    spec = folder / "experiments.yaml"
    spec.write_text(
        SWEEP_FILES[name]
        + "storage: /shared/tune\ndata_roots: {fashion_mnist: /shared/data/fashion-mnist}\n"
    )
    result = subprocess.run(
        [str(BIN / "monosweep"), "submit", str(spec), "--address", stack.ray_url],
        env=ray_env(stack),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    job = re.search(r"submitted (\S+)", result.stdout).group(1)
    return job, folder


def ray_env(stack: Stack) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_"))},
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(Path(stack.env["SECRETS_DIR"]) / "ray_auth_token"),
    }


WAIT_FOR_JOB = """
import json, sys, time
from ray.job_submission import JobStatus, JobSubmissionClient
address, job, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
client = JobSubmissionClient(address)
deadline = time.monotonic() + timeout
while not (status := client.get_job_status(job)).is_terminal() and time.monotonic() < deadline:
    time.sleep(3)
print(json.dumps({"status": str(status), "logs": client.get_job_logs(job)}))
"""


def wait_for_job(stack: Stack, job: str, timeout: float = 900) -> str:
    """The job's logs, once it SUCCEEDED (the test fails on any other end). Asked from a
    process of its own, with the Ray token in its environment as a user's shell has it."""
    result = subprocess.run(
        [sys.executable, "-c", WAIT_FOR_JOB, stack.ray_url, job, str(timeout)],
        env=ray_env(stack),
        capture_output=True,
        text=True,
        timeout=timeout + 60,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"].endswith("SUCCEEDED"), (
        f"{job}: {answer['status']}\n{answer['logs'][-6000:]}"
    )
    return answer["logs"]


@pytest.fixture(scope="module")
def mlflow_client(stack: Stack):
    """An MLflow client signed in as the sweep's user (not the admin)."""
    os.environ["MLFLOW_TRACKING_USERNAME"] = "sweeper"
    os.environ["MLFLOW_TRACKING_PASSWORD"] = stack.passwords["mlflow_sweep_password"]
    from mlflow.tracking import MlflowClient

    yield MlflowClient(stack.mlflow_url)
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        os.environ.pop(name, None)


def runs_of(client, name: str) -> list:
    experiment = client.get_experiment_by_name(name)
    return client.search_runs([experiment.experiment_id], max_results=1000) if experiment else []


def assert_every_cell_once(client, name: str) -> dict[str, list]:
    runs = runs_of(client, name)
    kinds = {
        kind: [r for r in runs if r.data.tags.get("monosweep.kind") == kind]
        for kind in ("sweep", "pretrain", "cell")
    }
    cells, pretrain, _ = CELLS[name]
    assert [len(kinds["sweep"]), len(kinds["pretrain"])] == [1, pretrain], {
        k: len(v) for k, v in kinds.items()
    }
    assert not [r for r in runs if r.info.status != "FINISHED"]
    keys = [r.data.tags["monosweep.key"] for r in kinds["cell"]]
    assert len(keys) == len(set(keys)) == cells  # one FINISHED run per cell
    return kinds


def worker_nodes(stack: Stack) -> dict[str, str]:
    """Ray node id -> compose service, for the two worker containers (a node's hostname is its
    container's short id)."""
    out = stack.run(
        "exec",
        "-T",
        "ray-head",
        "python",
        "-c",
        "import json, ray; ray.init(address='auto', logging_level='ERROR'); "
        "print('NODES', json.dumps({n['NodeManagerHostname']: n['NodeID'] "
        "for n in ray.nodes() if n['Alive']}))",
    )
    # Ray may log to stderr around it: the line is the one that starts with NODES
    nodes = [line for line in out.splitlines() if line.startswith("NODES ")]
    assert nodes, f"no node list from the head:\n{out[-3000:]}"
    by_host = json.loads(nodes[0].removeprefix("NODES "))
    found = {}
    for service in ("ray-cpu-worker-a", "ray-cpu-worker-b"):
        host = stack.container(service)[:12]
        assert host in by_host, f"{service} ({host}) is no Ray node: {by_host}"
        found[by_host[host]] = service
    return found


def download_through_proxy(client, run_id: str, suffix: str, dest: Path) -> Path:
    """The first artifact of the run (recursively) whose name ends in `suffix`, downloaded
    through the server."""

    def walk(path=None):
        for item in client.list_artifacts(run_id, path):
            yield from walk(item.path) if item.is_dir else [item.path]

    match = next((p for p in walk() if p.endswith(suffix)), None)
    assert match, f"run {run_id} has no *{suffix} artifact"
    return Path(client.download_artifacts(run_id, match, str(dest)))


def image_has_no_build_secret(image: str, ca_hash: str) -> None:
    history = subprocess.run(
        ["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "BEGIN CERTIFICATE" not in history and "127.0.0.1" not in history, image
    # Every regular file of the image's filesystem: none is the CA bundle or a pip.conf.
    script = (
        "import hashlib, os, sys\n"
        "for d, _, fs in os.walk('/'):\n"
        "    if d.startswith(('/proc', '/sys', '/dev')): continue\n"
        "    for f in fs:\n"
        "        p = os.path.join(d, f)\n"
        "        if f == 'pip.conf' or p.startswith('/run/secrets'): print('FOUND', p)\n"
        "        if f.endswith(('.crt', '.pem')) and os.path.isfile(p) and not os.path.islink(p):\n"
        "            if hashlib.sha256(open(p, 'rb').read()).hexdigest() == sys.argv[1]:\n"
        "                print('FOUND', p)\n"
    )
    python = "python" if "postgres" not in image else "perl"
    if python == "perl":  # no Python in the PostgreSQL image: compare with sha256sum
        out = subprocess.run(
            [
                "docker", "run", "--rm", "--entrypoint", "sh", image, "-c",
                "find / -xdev -type f \\( -name '*.crt' -o -name '*.pem' -o -name pip.conf \\) "
                "-exec sha256sum {} + 2>/dev/null; ls /run/secrets 2>/dev/null",
            ],
            capture_output=True, text=True,
        ).stdout  # fmt: skip
        found = [line for line in out.splitlines() if ca_hash in line or "pip.conf" in line]
    else:
        out = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "python", image, "-c", script, ca_hash],
            capture_output=True,
            text=True,
        ).stdout
        found = [line for line in out.splitlines() if line.startswith("FOUND")]
    assert not found, f"{image}: {found}"


@pytest.mark.cluster
def test_images_keep_no_build_secret(stack):
    ca_hash = hashlib.sha256(HOST_CA.read_bytes()).hexdigest() if HOST_CA.exists() else "-"
    for target in ("worker", "mlflow", "postgres"):
        image_has_no_build_secret(f"monosweep-{target}:latest", ca_hash)


@pytest.mark.cluster
def test_sweeps_on_the_compose_stack_survive_restarts_and_down_up(stack, mlflow_client, tmp_path):
    timings, client = stack.timings, mlflow_client

    # 1. A sweep from this machine, through the Jobs API; the driver runs on the head.
    started = time.monotonic()
    job, _ = submit(stack, FIRST)
    logs = wait_for_job(stack, job)
    timings["first sweep"] = time.monotonic() - started
    assert "15/15 cells FINISHED" in logs
    kinds = assert_every_cell_once(client, FIRST)
    jobs = [*kinds["pretrain"], *kinds["cell"]]
    nodes = worker_nodes(stack)
    per_worker = {
        service: sum(r.data.tags["monosweep.ray_node"] == node for r in jobs)
        for node, service in nodes.items()
    }
    assert all(per_worker.values()) and sum(per_worker.values()) == len(jobs), per_worker

    # Checkpoints and figures through the artifact proxy; they live in the server's volume.
    experiment = client.get_experiment_by_name(FIRST)
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    checkpoint = download_through_proxy(
        client, kinds["pretrain"][0].info.run_id, "checkpoint.pt", tmp_path / "ckpt"
    )
    assert checkpoint.stat().st_size > 0
    figure = download_through_proxy(
        client, kinds["pretrain"][0].info.run_id, "conv1_filters.png", tmp_path / "fig"
    )
    assert figure.read_bytes()[:4] == b"\x89PNG"
    stored = stack.run(
        "exec", "-T", "mlflow", "find", "/mlartifacts", "-name", "checkpoint.pt"
    ).split()
    assert len(stored) == 3, stored

    # The sweep's user may not read an experiment it was not given (one the admin makes).
    from mlflow.exceptions import MlflowException

    os.environ["MLFLOW_TRACKING_USERNAME"] = "admin"
    os.environ["MLFLOW_TRACKING_PASSWORD"] = stack.passwords["mlflow_admin_password"]
    try:
        other = client.create_experiment(f"not-for-sweeps-{secrets.token_hex(3)}")
    finally:
        os.environ["MLFLOW_TRACKING_USERNAME"] = "sweeper"
        os.environ["MLFLOW_TRACKING_PASSWORD"] = stack.passwords["mlflow_sweep_password"]
    with pytest.raises(MlflowException, match="403|PERMISSION_DENIED|ermission"):
        client.get_experiment(other)

    # 2. A second sweep; MLflow and PostgreSQL restart while its pretrain jobs train.
    started = time.monotonic()
    job2, _ = submit(stack, SECOND)
    deadline = time.monotonic() + 300
    training = []
    while not training:
        assert time.monotonic() < deadline, "no pretrain job of the second sweep seen training"
        training = [
            r
            for r in runs_of(client, SECOND)
            if r.data.tags.get("monosweep.kind") == "pretrain"
            and r.info.status == "RUNNING"
            and "pretext_loss" in r.data.metrics
        ]
        time.sleep(1)
    restarted = time.monotonic()
    before_restart = {s: stack.started_at(s) for s in ("postgres", "mlflow")}
    stack.run("restart", "postgres", "mlflow")
    timings["restart"] = time.monotonic() - restarted
    assert all(stack.started_at(s) > t for s, t in before_restart.items())  # really restarted
    logs2 = wait_for_job(stack, job2)
    timings["second sweep"] = time.monotonic() - started
    cells2 = CELLS[SECOND][0]
    assert f"{cells2}/{cells2} cells FINISHED" in logs2
    kinds2 = assert_every_cell_once(client, SECOND)

    # 3. down, up: the record is in the volumes.
    before = {name: sorted(r.info.run_id for r in runs_of(client, name)) for name in CELLS}
    stack.run("down", timeout=300)
    timings["second up"] = stack.up()
    after = {name: sorted(r.info.run_id for r in runs_of(client, name)) for name in CELLS}
    assert after == before
    for name in CELLS:
        assert_every_cell_once(client, name)
    again = download_through_proxy(
        client, kinds["pretrain"][0].info.run_id, "checkpoint.pt", tmp_path / "again"
    )
    assert again.read_bytes() == checkpoint.read_bytes()

    # No password or token in any param, tag, recorded text file or log.
    runs = runs_of(client, FIRST) + runs_of(client, SECOND)
    values = list(stack.passwords.values())
    for r in runs:
        for key, value in {**r.data.params, **r.data.tags}.items():
            assert not [v for v in values if v in value], (r.info.run_id, key)
    texts = 0
    for r in [*kinds["sweep"], *kinds2["sweep"], *kinds["pretrain"][:1], *kinds["cell"][:1]]:
        folder = Path(client.download_artifacts(r.info.run_id, "", str(tmp_path / r.info.run_id)))
        for path in folder.rglob("*"):
            if path.suffix in {".json", ".yaml", ".txt", ".csv", ".md", ".html", ".log"}:
                texts += 1
                assert not [v for v in values if v in path.read_text(errors="replace")], path
    everything = logs + logs2 + stack.run("logs", "--no-color")
    assert not [v for v in values if v in everything]

    total = len(runs)
    line = (
        f"cluster-test: {CELLS[FIRST][0]} + {cells2} cells, each one FINISHED run ({total} runs "
        f"on the server, the same {total} after down/up); job runs per worker {per_worker}; "
        f"3 checkpoints in the artifact volume, a checkpoint and a figure downloaded through the "
        f"proxy; {len(values)} secrets in none of {total} runs' params and tags, {texts} text "
        f"artifacts or the logs; MLflow+PostgreSQL restarted mid-sweep in "
        f"{timings['restart']:.0f}s; times: "
        + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
    )
    print("\n" + line)
    SUMMARY.write_text(line + "\n")
