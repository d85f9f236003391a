"""Load and lost services: 200 cells from 8 concurrent workers into one `mlflow server`, and
a sweep that lives through a restart of that server. Nothing may be lost or duplicated."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import ray
from mlflow.tracking import MlflowClient

from orchestrator.cli.main import main
from tests.conftest import FASHION_MNIST
from tests.services import MlflowServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (make setup)"),
]

LOAD = """\
name: load
grid:
  method: [random]
  images: [astronaut]
  augmentation: [full]
  layer: [conv1, conv2, conv3, conv4, conv5]
  probe_dataset: [fashion_mnist]
  seed: [{seeds}]
network: {{width: 0.25, input_size: 64}}
probe: {{preset: fast, epochs: 1, train_samples: 200, test_samples: 200}}
resources: {{pretrain: {{cpus: 0.25}}, evaluation: {{cpus: 0.25}}}}   # 8 at once on 2 CPUs
retries: 0
tracking_uri: {uri}
"""


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    s = MlflowServer(f"sqlite:///{tmp_path / 'server.db'}", tmp_path).start()
    yield s
    s.stop()
    ray.shutdown()


def runs_of(url: str, name: str) -> list:
    client = MlflowClient(url)
    return client.search_runs([client.get_experiment_by_name(name).experiment_id], max_results=10_000)


def test_200_cells_from_8_workers_into_one_server(server, tmp_path, capsys):
    spec = tmp_path / "load.yaml"
    spec.write_text(LOAD.format(seeds=", ".join(map(str, range(40))), uri=server.url))
    started = time.monotonic()
    assert main(["run", str(spec)]) == 0
    wall = time.monotonic() - started
    assert "200/200 cells FINISHED" in capsys.readouterr().out
    runs = runs_of(server.url, "load")
    probes = [r for r in runs if r.data.tags["monosweep.kind"] == "cell"]
    assert len(probes) == 200 and len({r.data.tags["monosweep.key"] for r in probes}) == 200  # none lost, none twice
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.tags["monosweep.attempt"] == "1" for r in runs if r.data.tags["monosweep.kind"] != "sweep")
    assert "database is locked" not in server.log.read_text()
    print(f"\nload: 200 cells, 80 jobs, 8 concurrent workers, one mlflow server: {wall:.0f} s")


def test_sweep_survives_a_restart_of_the_tracking_server(server, tmp_path):
    spec = tmp_path / "restart.yaml"
    spec.write_text(
        LOAD.format(seeds="0, 1", uri=server.url)
        .replace("method: [random]", "method: [{name: rotnet, samples: 1600, epochs: 1, batch_size: 16}]")
        .replace("retries: 0", "retries: 1")
    )
    driver = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli.main", "run", str(spec)], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline:  # wait until pretraining is under way
            try:
                if any(r.info.status == "RUNNING" and r.data.tags.get("monosweep.kind") == "pretrain"
                       for r in runs_of(server.url, "load")):
                    break
            except Exception:  # noqa: BLE001  (the experiment may not exist yet)
                pass
            time.sleep(1)
        server.stop()
        time.sleep(5)  # the server is down while workers log
        server.start()
        out, _ = driver.communicate(timeout=600)
    finally:
        driver.kill()
    assert driver.returncode == 0, out[-3000:]
    runs = runs_of(server.url, "load")
    probes = [r for r in runs if r.data.tags["monosweep.kind"] == "cell"]
    assert len(probes) == 10 and all(r.info.status == "FINISHED" for r in probes)
    assert len({r.data.tags["monosweep.key"] for r in probes}) == 10
    client = MlflowClient(server.url)
    for r in (r for r in runs if r.data.tags["monosweep.kind"] == "pretrain"):
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "pretext_loss")]
        assert sorted(set(steps)) == [20, 40, 60, 80, 100], steps  # no point lost
