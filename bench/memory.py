"""Peak memory per job type: each job runs in its own process (peak RSS from getrusage, the
Python heap's peak from tracemalloc, CUDA's peak where there is a GPU), against a process
that only imports what a worker imports. Also: GPU memory is released between jobs run one
after another in one worker process (what Ray's reused actors do); `gpu_memory_between_jobs`
is the check, run here and by tests/test_bench_smoke.py where a GPU exists.

    python -m bench.memory
"""

from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
import tempfile
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

from bench.common import parser, report, setup, table

KINDS = (
    "import only",
    "pretrain random",
    "pretrain rotnet",
    "probe fast (cached)",
    "probe asano2020",
    "plan 10k cells",
)


def spec(folder: Path, tiny: bool) -> Path:
    samples, train, test = (64, 200, 100) if tiny else (2048, 10_000, 2_000)
    path = folder / "memory.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        name: memory
        grid:
          method: [random, {{name: rotnet, samples: {samples}, epochs: 1, batch_size: 64}}]
          images: [astronaut]
          augmentation: [full]
          layer: [conv1, conv2, conv3, conv4, conv5]
          probe_dataset: [fashion_mnist]
        network: {{width: 0.5, input_size: 64}}
        probe: {{preset: fast, epochs: 1, train_samples: {train}, test_samples: {test}}}
        tracking_uri: sqlite:///{folder / "unused.db"}
        """)
    )
    return path


def child(kind: str, folder: Path, tiny: bool) -> dict[str, Any]:
    """Run one job of `kind` in this process; its peaks."""
    import torch

    from contract.evaluations import ProbeConfig
    from contract.recorder import MemoryRecorder
    from orchestrator.sweep import prepare
    from workers import tasks

    tracemalloc.start()
    prepared = prepare(spec(folder, tiny))
    jobs = {j.method.name: j for j in prepared.sweep.pretrain_jobs.values()}
    evaluation_jobs = [
        j for j in prepared.sweep.evaluation_jobs.values() if j.pretrain_key == jobs["rotnet"].key
    ]
    tracemalloc.reset_peak()
    if kind == "pretrain random":
        tasks.pretrain(jobs["random"], MemoryRecorder(), folder)
    elif kind == "pretrain rotnet":
        tasks.pretrain(jobs["rotnet"], MemoryRecorder(), folder)
    elif kind.startswith("probe"):
        checkpoint = tasks.pretrain(jobs["random"], MemoryRecorder(), folder)  # any trunk will do
        tracemalloc.reset_peak()
        job = evaluation_jobs[0]
        if kind == "probe asano2020":
            probe = ProbeConfig(
                preset="asano2020",
                epochs=1,
                test_crops="center",
                train_samples=job.probe.train_samples,
                test_samples=job.probe.test_samples,
            )
            job = job.model_copy(update={"probe": probe})
        tasks.probe(job, checkpoint, MemoryRecorder())
    elif kind == "plan 10k cells":
        from bench.orchestration import write_spec
        from orchestrator.plan import plan

        sweep = prepare(write_spec(folder, 4 if tiny else 50, 2 if tiny else 10)).sweep
        plan(sweep, set(), set())
    _, heap_peak = tracemalloc.get_traced_memory()
    out = {
        "kind": kind,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "python_heap_peak_mb": heap_peak / 2**20,
    }
    if torch.cuda.is_available():
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def gpu_memory_between_jobs(jobs: int = 3) -> dict[str, Any]:
    """Run `jobs` small RotNet pre-trainings one after another in this process on the GPU;
    CUDA memory allocated after each (their tensors gone) must not grow.

    Raises:
        RuntimeError: no CUDA device.
    """
    import torch

    from contract.recorder import MemoryRecorder
    from orchestrator.sweep import prepare
    from workers import tasks

    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        job = next(
            j
            for j in prepare(spec(folder, tiny=True)).sweep.pretrain_jobs.values()
            if j.method.name == "rotnet"
        )
        gc.collect()
        before = torch.cuda.memory_allocated()
        after, peaks = [], []
        for n in range(jobs):
            torch.cuda.reset_peak_memory_stats()
            tasks.pretrain(job.model_copy(update={"seed": n}), MemoryRecorder(), folder)
            gc.collect()
            after.append(torch.cuda.memory_allocated())
            peaks.append(torch.cuda.max_memory_allocated())
        return {
            "allocated_before": before,
            "allocated_after_each": after,
            "peak_each": peaks,
            "reserved_after": torch.cuda.memory_reserved(),
        }


def main(argv: list[str] | None = None) -> None:
    p = parser("memory", __doc__.splitlines()[0])
    p.add_argument("--child", choices=KINDS, help=argparse_hidden())
    args = p.parse_args(argv)
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(child(args.child, Path(tmp), args.tiny)))
        return
    device = setup(args)
    results: list[dict[str, Any]] = []
    for kind in KINDS[:2] if args.tiny else KINDS:
        command = [
            sys.executable,
            "-m",
            "bench.memory",
            "--child",
            kind,
            "--threads",
            str(args.threads),
        ]
        done = subprocess.run(
            command + (["--tiny"] if args.tiny else []),
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{kind}: {done.stderr[-2000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = results[0]["peak_rss_mb"]
    rows = [
        [
            r["kind"],
            r["peak_rss_mb"],
            r["peak_rss_mb"] / base,
            r["peak_rss_mb"] - base,
            r["python_heap_peak_mb"],
            r.get("cuda_peak_mb", ""),
        ]
        for r in results
    ]
    out: dict[str, Any] = {"jobs": results}
    if device.startswith("cuda"):
        out["gpu_between_jobs"] = gpu_memory_between_jobs()
        after = out["gpu_between_jobs"]["allocated_after_each"]
        rows.append(
            [
                "GPU allocated after each of 3 jobs in one process (MB)",
                "",
                "",
                "",
                "",
                " / ".join(f"{a / 2**20:.1f}" for a in after),
            ]
        )
    text = table(
        "Peak memory per job type (own process each; 64 px, width 0.5"
        + (", tiny)" if args.tiny else ")"),
        [
            "job",
            "peak RSS MB",
            "x import-only",
            "+MB over import-only",
            "Python heap peak MB",
            "CUDA peak MB",
        ],
        rows,
    )
    report("memory", args, device, text, out)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
