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
from orchestrator import record
from orchestrator.jobs import pretrain_params, run_pretrain
from orchestrator.sweep import prepare
from workers import tasks
from workers.recording import MemoryRecorder

TARGET = 0.05  # logging at most 5% of a small job's time


class AsyncMetrics(record.MlflowRecorder):
    """A proposal measured beside the MlflowRecorder: metrics go out with MLflow's asynchronous
    log_batch (a background queue); `flush` waits for them, as the job's end must."""

    def __init__(self, uri: str, runs):
        super().__init__(uri, runs)
        self.pending = []

    def metrics(self, values, step, layer=None) -> None:
        import time as _time

        from mlflow.entities import Metric

        now = int(_time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in values.items()]
        for run_id in self._targets(layer):
            self.pending.append(self.client.log_batch(run_id, metrics=batch, synchronous=False))

    def flush(self) -> None:
        for operation in self.pending:
            operation.wait()
        self.pending.clear()


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
        tracking = record.open_sweep("logging", uri, {})
        job = next(iter(prepared.sweep.pretrain_jobs.values()))
        probe_job = next(iter(prepared.sweep.probe_jobs.values()))
        workdirs = iter(range(10**6))

        def workdir() -> Path:
            path = folder / f"work{next(workdirs)}"
            path.mkdir()
            return path

        def fresh_run(kind: str, key: str) -> str:
            run_id, _ = record.start_run(
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
        probe_runs = iter(
            [
                {c.layer: fresh_run("probe", c.key) for c in probe_job.cells}
                for _ in range(2 * repeats + 2)
            ]
        )
        t = interleaved(
            {
                "memory": lambda: tasks.pretrain(job, MemoryRecorder(), workdir()),
                "mlflow": lambda: timed_job(
                    lambda r: tasks.pretrain(job, r, workdir()),
                    record.MlflowRecorder(uri, {None: next(pretrain_runs)}),
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

        t = interleaved(
            {
                "memory": lambda: tasks.probe(probe_job, checkpoint, MemoryRecorder()),
                "mlflow": lambda: timed_job(
                    lambda r: tasks.probe(probe_job, checkpoint, r),
                    record.MlflowRecorder(uri, next(probe_runs)),
                ),
                "mlflow, async metrics": lambda: timed_job(
                    lambda r: tasks.probe(probe_job, checkpoint, r),
                    AsyncMetrics(uri, next(probe_runs)),
                ),
            },
            repeats,
            warmup=1,
            wall=True,
        )
        overhead = median(t["mlflow"]) / median(t["memory"]) - 1
        async_overhead = median(t["mlflow, async metrics"]) / median(t["memory"]) - 1
        kinds = {"mlflow": "MlflowRecorder", "mlflow, async metrics": "AsyncMetrics"}
        inside = {
            n: median([s for k, s, _ in Timed.log[2:] if k == kind]) for n, kind in kinds.items()
        }  # after warm-up
        calls = Timed.log[-1][2]
        share = {n: inside[n] / median(t[n]) for n in inside}
        results["probe"] = {
            "memory_s": median(t["memory"]),
            "mlflow_s": median(t["mlflow"]),
            "overhead_ab": overhead,
            "mlflow_async_metrics_s": median(t["mlflow, async metrics"]),
            "async_metrics_overhead_ab": async_overhead,
            "logging_calls": calls,
            "logging_s": inside["mlflow"],
            "logging_share": share["mlflow"],
            "async_logging_s": inside["mlflow, async metrics"],
            "async_logging_share": share["mlflow, async metrics"],
        }
        epochs = probe_job.probe.epochs
        label = (
            f"probe job, fast preset, {epochs} epochs x 5 layers, {train} images ({calls} calls)"
        )
        rows.append(
            [
                label,
                median(t["mlflow"]),
                inside["mlflow"],
                1e3 * inside["mlflow"] / calls,
                100 * share["mlflow"],
                100 * overhead,
                "",
            ]
        )
        rows.append(
            [
                "  the same, metrics through MLflow's async log_batch (proposal)",
                median(t["mlflow, async metrics"]),
                inside["mlflow, async metrics"],
                1e3 * inside["mlflow, async metrics"] / calls,
                100 * share["mlflow, async metrics"],
                100 * async_overhead,
                "",
            ]
        )
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
