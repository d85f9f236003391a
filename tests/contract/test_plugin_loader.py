"""A broken plugin is a clear error, in the CLI before a file is validated and in a worker
before a job runs: it names the distribution and its version, the group and entry point, and
the exception. The plugins are distributions put on the path (a dist-info folder: METADATA and
entry_points.txt, beside their modules), each command a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"


def distribution(site: Path, name: str, version: str, points: dict[str, dict[str, str]], modules: dict[str, str]):
    """A distribution as an installer leaves it in `site`: its modules and its dist-info."""
    for path, source in modules.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_text(source)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in named.items()) for group, named in points.items())
    )


def run(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MONOSWEEP_FAULTS")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


BROKEN = {
    "raises": ("broken_ssl/settings.py", "1 / 0\n", "ZeroDivisionError: division by zero"),
    "takes a shipped name": (
        "broken_ssl/settings.py",
        "from typing import Literal\nfrom contract.methods import METHODS, MethodSettings\n\n"
        "@METHODS.add\nclass Mine(MethodSettings):\n    name: Literal['rotnet'] = 'rotnet'\n",
        "ValueError: method 'rotnet' is registered twice",
    ),
    "missing module": ("broken_ssl/other.py", "", "ModuleNotFoundError: No module named 'broken_ssl.settings'"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_plugin_is_named_before_a_file_is_validated(case, tmp_path):
    path, source, error = BROKEN[case]
    distribution(tmp_path, "broken-ssl", "0.3.1", {"monosweep.methods": {"jigsaw_lite": "broken_ssl.settings"}},
                 {"broken_ssl/__init__.py": "", path: source})
    done = run(tmp_path, "-m", "orchestrator.cli.main", "validate", str(QUICKSTART))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "plugin broken-ssl 0.3.1: entry point 'jigsaw_lite' = 'broken_ssl.settings' in group 'monosweep.methods' "
        f"failed to load: {error} (fix or uninstall broken-ssl)\n"
    )


WORKER = """
import sys
from contract.plugins import PluginError
from orchestrator import jobs
from orchestrator.record import runs
from orchestrator.sweep import prepare

prepared = prepare(sys.argv[1])  # not the CLI: nothing has loaded the plugins
(trunk,) = prepared.sweep.pretrain_jobs.values()
tracking = runs.open_sweep(prepared.spec.name, prepared.uri, {}, system_metrics=False)
try:
    jobs.run_pretrain(trunk, tracking)
except PluginError:
    print(tracking.experiment_id)
"""


@pytest.mark.slow
def test_a_worker_loads_the_plugins_before_its_job_and_records_a_broken_one(tmp_path):
    site = tmp_path / "site"
    distribution(site, "broken-ops", "2.0", {"monosweep.ops": {"swirl": "broken_ops"}},
                 {"broken_ops.py": "raise ImportError('needs kornia')\n"})
    spec = tmp_path / "experiments.yaml"
    spec.write_text("name: worker\ngrid: {method: [random], images: [astronaut], augmentation: [none], "
                    "layer: [conv1], probe_dataset: [fashion_mnist]}\nnetwork: {width: 0.25, input_size: 64}\n")
    done = run(site, "-c", WORKER, str(spec), cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-2000:]
    (pretrain,) = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_runs(
        [done.stdout.strip()], "tags.`monosweep.kind` = 'pretrain'")
    assert pretrain.info.status == "FAILED"
    assert pretrain.data.tags["monosweep.error_class"] == "PluginError"
    assert pretrain.data.tags["monosweep.error"].startswith(
        "plugin broken-ops 2.0: entry point 'swirl' = 'broken_ops' in group 'monosweep.ops' failed to load: "
        "ImportError: needs kornia")
