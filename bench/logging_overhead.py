"""MLflow logging overhead: the same small jobs (a RotNet pre-training, then a probe job on
its trunk) with the in-memory recorder against the MLflow recorder on a SQLite store; and the
whole recorded job (orchestrator.jobs: runs opened, config logged, closed) for context.

    python -m bench.logging_overhead
"""

from __future__ import annotations

import tempfile
import textwrap
import time
from pathlib import Path

from bench.common import interleaved, median, parser, report, setup, table
from contract.recorder import MemoryRecorder
from orchestrator.jobs import pretrain_params, run_evaluation, run_pretrain
from orchestrator.record import runs
from orchestrator.record.recorder import MlflowRecorder
from orchestrator.sweep import prepare
from workers import tasks

TARGET = 0.05  # logging at most 5% of a small job's time


class Timed:
    """A recorder wrapped so that the time spent inside its calls adds up in `seconds`: the
    logging's share of a job measured within the job, immune to load that varies between runs."""

    log: list[tuple[str, float, int]] = []  # (recorder class, seconds, calls) of every timed job

    def __init__(self, inner):
        self.inner, self.seconds, self.calls = inner, 0.0, 0

    def __getattr__(self, name: str):
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        return timed


def timed_job(run, recorder) -> None:
    """Run `run(recorder)` with the recorder timed; log its time and calls."""
    wrapped = Timed(recorder)
    run(wrapped)
    if hasattr(recorder, "flush"):
        wrapped.flush()
    Timed.log.append((type(recorder).__name__, wrapped.seconds, wrapped.calls))


def spec(folder: Path, samples: int, train: int, test: int) -> Path:
    path = folder / "logging.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        name: logging
        grid:
          method: [{{name: rotnet, samples: {samples}, epochs: 1, batch_size: 32}}]
          images: [astronaut]
          augmentation: [full]
          layer: [conv1, conv2, conv3, conv4, conv5]
          probe_dataset: [fashion_mnist]
        network: {{width: 0.25, input_size: 64}}
        probe: {{preset: fast, epochs: 4, train_samples: {train}, test_samples: {test}}}
        tracking_uri: sqlite:///{folder / "mlflow.db"}
        checkpoint_every: 0
        """)
    )
    return path


def probe_case(probe_job, checkpoint: Path, uri: str, tracking, fresh_run, repeats: int):
    """The probe job with the in-memory recorder, with the MLflow recorder (runs opened
    outside the timing), and as a whole recorded job (orchestrator.jobs.run_evaluation)."""
    unique = iter(range(10**6))
    # Runs are opened outside the timed calls: what is timed is the job and its logging.
    runs = iter(
        [{c.layer: fresh_run("probe", c.key) for c in probe_job.cells} for _ in range(repeats + 1)]
    )

    def recorded_job() -> None:  # fresh cell keys: each repeat opens new runs, as a new cell does
        n = next(unique)
        key = f"{probe_job.probe.epochs}-{n}"
        cells = tuple(c.model_copy(update={"key": f"{c.key}-{key}"}) for c in probe_job.cells)
        run_evaluation(probe_job.model_copy(update={"cells": cells}), tracking)

    Timed.log.clear()
    t = interleaved(
        {
            "memory": lambda: tasks.probe(probe_job, checkpoint, MemoryRecorder()),
            "mlflow": lambda: timed_job(
                lambda r: tasks.probe(probe_job, checkpoint, r),
                MlflowRecorder(uri, next(runs)),
            ),
            "recorded job": recorded_job,
        },
        repeats,
        warmup=1,
        wall=True,
    )
    memory, mlflow, whole = median(t["memory"]), median(t["mlflow"]), median(t["recorded job"])
    inside, calls = median([s for _, s, _ in Timed.log[1:]]), Timed.log[-1][2]  # after warm-up
    cfg = probe_job.probe
    results = {
        "epochs": cfg.epochs,
        "train_samples": cfg.train_samples,
        "test_samples": cfg.test_samples,
        "memory_s": memory,
        "mlflow_s": mlflow,
        "recorded_job_s": whole,
        "overhead_ab": mlflow / memory - 1,
        "recorded_job_overhead_ab": whole / memory - 1,
        "logging_calls": calls,
        "logging_s": inside,
        "logging_share": inside / mlflow,
    }
    test = cfg.test_samples or "all"
    label = (
        f"probe job, fast preset, {cfg.epochs} epochs x 5 layers, {cfg.train_samples} train /"
        f" {test} test images ({calls} recorder calls)"
    )
    row = [label, mlflow, inside, 1e3 * inside / calls, 100 * inside / mlflow,
           100 * (mlflow / memory - 1), 100 * (whole / memory - 1)]  # fmt: skip
    return [row], results


def main(argv: list[str] | None = None) -> None:
    p = parser("logging_overhead", __doc__.splitlines()[0])
    args = p.parse_args(argv)
    device = setup(args)
    repeats = args.repeats or (1 if args.tiny else 5)
    samples, train, test = (64, 100, 100) if args.tiny else (640, 2000, 1000)
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        prepared = prepare(spec(folder, samples, train, test))
        uri = prepared.uri
        tracking = runs.open_sweep("logging", uri, {})
        job = next(iter(prepared.sweep.pretrain_jobs.values()))
        probe_job = next(iter(prepared.sweep.evaluation_jobs.values()))
        workdirs = iter(range(10**6))

        def workdir() -> Path:
            path = folder / f"work{next(workdirs)}"
            path.mkdir()
            return path

        def fresh_run(kind: str, key: str) -> str:
            run_id, _ = runs.start_run(
                tracking,
                kind,
                key + str(next(workdirs)),
                job.label,
                tracking.sweep_run_id,
                pretrain_params(job),
                {},
            )
            return run_id

        checkpoint = tasks.pretrain(job, MemoryRecorder(), workdir())
        # Runs are opened outside the timed calls: what is timed is the job and its logging.
        pretrain_runs = iter([fresh_run("pretrain", job.key) for _ in range(repeats + 1)])
        t = interleaved(
            {
                "memory": lambda: tasks.pretrain(job, MemoryRecorder(), workdir()),
                "mlflow": lambda: timed_job(
                    lambda r: tasks.pretrain(job, r, workdir()),
                    MlflowRecorder(uri, {None: next(pretrain_runs)}),
                ),
                "recorded job": lambda: run_pretrain(
                    job.model_copy(update={"key": f"{job.key}-{next(workdirs)}"}), tracking
                ),
            },
            repeats,
            warmup=1,
            wall=True,
        )
        overhead = median(t["mlflow"]) / median(t["memory"]) - 1
        whole = median(t["recorded job"]) / median(t["memory"]) - 1
        inside, calls = median([s for _, s, _ in Timed.log[-repeats:]]), Timed.log[-1][2]
        share = inside / median(t["mlflow"])
        Timed.log.clear()
        steps = samples // 32
        results["pretrain"] = {
            "memory_s": median(t["memory"]),
            "mlflow_s": median(t["mlflow"]),
            "recorded_job_s": median(t["recorded job"]),
            "overhead_ab": overhead,
            "recorded_job_overhead_ab": whole,
            "steps": steps,
            "logging_s": inside,
            "logging_calls": calls,
            "logging_share": share,
        }
        label = (
            f"rotnet pretrain, {steps} steps of 32 at 64 px ({calls} logging calls: 3 artifacts)"
        )
        rows.append(
            [
                label,
                median(t["mlflow"]),
                inside,
                1e3 * inside / calls,
                100 * share,
                100 * overhead,
                100 * whole,
            ]
        )

        # A probe job as small as the pretrain above, then one of the examples' size (fast
        # preset, 12 epochs, 10,000 train images, the 10,000 test images): fixed costs per
        # recorded job (5 runs opened, config written, closed) weigh on the first.
        run_pretrain(job, tracking)  # the FINISHED pretrain run (checkpoint.pt) run_evaluation reads
        sizes = {"small": probe_job}
        if not args.tiny:
            examples = probe_job.probe.model_copy(
                update={"epochs": 12, "train_samples": 10_000, "test_samples": None}
            )
            sizes["examples"] = probe_job.model_copy(update={"probe": examples})
        for size, pj in sizes.items():
            more_rows, results[f"probe_{size}"] = probe_case(
                pj, checkpoint, uri, tracking, fresh_run, repeats if size == "small" else 3
            )
            rows += more_rows
    text = table(
        f"MLflow logging overhead (SQLite store; target at most {100 * TARGET:.0f}%)",
        [
            "job",
            "job s",
            "inside logging calls s",
            "ms / call",
            "logging % of job",
            "A/B vs MemoryRecorder %",
            "A/B whole recorded job %",
        ],
        rows,
    )
    report("logging_overhead", args, device, text, results)


if __name__ == "__main__":
    main()
