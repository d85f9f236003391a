"""MLflow's system metrics (CPU, memory, disk, network; GPU where `pynvml` finds one) of a
job's machine, written to the job's runs while it works: `system/cpu_utilization_percentage`,
`system/system_memory_usage_megabytes`, `system/gpu_0_utilization_percentage`, ...

MLflow's `SystemMetricsMonitor` takes the samples; the loop and the writes are ours, because its
own loop writes to one run (a probe job has a run per cell, in one process, and psutil's CPU
share is measured between two calls, so one sampler must serve them all), reads the run back
before every sample, and writes nothing for a job shorter than one interval. Here every run of
the job gets each sample, and the last one is taken when the job ends, so a short job has one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence

from mlflow.entities import Metric

from orchestrator.record.store import client, log_batch

# MLflow's default; MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL overrides it (MLflow reads it).
INTERVAL_S = 10.0


class SystemMetrics:
    """Samples the machine every `interval` s in a thread and writes each sample to `run_ids`
    (steps 0, 1, ...), then once more at `stop`. A failed write stops the sampling, never the
    job."""

    def __init__(self, uri: str, run_ids: Sequence[str], interval: float = INTERVAL_S):
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self.uri, self.run_ids, self.step = uri, list(run_ids), 0
        self.sampler = SystemMetricsMonitor(run_ids[0], sampling_interval=interval, tracking_uri=uri)
        self.prefix = "system/" + (f"{self.sampler.node_id}/" if self.sampler.node_id else "")
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="monosweep-system-metrics", daemon=True)
        self.sampler.collect_metrics()  # psutil's CPU share is since its previous call: this one
        for monitor in self.sampler.monitors:  # starts the clock and is not a sample
            monitor.clear_metrics()

    def start(self) -> SystemMetrics:
        self.thread.start()
        return self

    def stop(self, last_sample: bool = True) -> None:
        """End the sampling; with `last_sample`, write one more sample (the job's end)."""
        self.stopped.set()
        self.thread.join(timeout=30)  # a write in flight may be retrying a locked store
        if last_sample and not self.thread.is_alive():
            with contextlib.suppress(Exception):
                self._write()

    def _loop(self) -> None:
        while not self.stopped.wait(self.sampler.sampling_interval):
            try:
                self._write()
            except Exception as e:  # noqa: BLE001  (the job goes on without its system metrics)
                logging.getLogger(__name__).warning("system metrics stopped: %s", e)
                return

    def _write(self) -> None:
        self.sampler.collect_metrics()
        values = self.sampler.aggregate_metrics()
        for monitor in self.sampler.monitors:
            monitor.clear_metrics()
        now = int(time.time() * 1000)
        metrics = [Metric(self.prefix + k, float(v), now, self.step) for k, v in values.items()]
        c = client(self.uri)
        for run_id in self.run_ids:
            log_batch(c, run_id, metrics=metrics)
        self.step += 1


@contextlib.contextmanager
def system_metrics(uri: str, run_ids: Sequence[str], on: bool = True) -> Iterator[None]:
    """System metrics of the block's machine on `run_ids` while the block runs (nothing when
    `on` is false, or without psutil). An interrupted block (Ctrl-C, a cancelled job) gets no
    last sample: its runs are being closed."""
    monitor = None
    if on and run_ids:
        try:
            monitor = SystemMetrics(uri, run_ids).start()
        except ImportError:  # psutil is missing: MLflow's CPU monitor needs it
            monitor = None
    try:
        yield
    except Exception:
        if monitor is not None:
            monitor.stop()
        raise
    except BaseException:
        if monitor is not None:
            monitor.stop(last_sample=False)
        raise
    if monitor is not None:
        monitor.stop()
