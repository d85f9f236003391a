"""Print an experiment file's jobs by kind and, with --estimate, what they will cost in FLOPs,
GPU-hours and peak GPU memory; nothing runs, nothing is written.

The estimate is a table: per row (a method, or an evaluation on a dataset) the jobs, the samples
each reads, its TFLOPs, its GPU-hours and its peak GPU memory; then the sweep's GPU-hours. A file
that adds seeds until its findings are decided (`seed: {min, max}`) is priced at the maximum
(the findings' rows at max seeds), and its minimum (every row at min seeds) beside it.

FLOPs and memory are measured on the workers' own modules at the jobs' shapes (on PyTorch's meta
device: nothing is computed, so --estimate needs torch on this machine but no GPU); GPU-hours
are FLOPs over --gpu-tflops x --mfu, the MFU by default the one bench.gpu measured for the file's
`compute` setting, or an assumption for its precision, said as such, until one is measured.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

from orchestrator import estimate, rounds
from orchestrator.errors import UserError
from orchestrator.findings import resolve
from orchestrator.grid import Expansion
from orchestrator.sweep import prepare


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="experiment file (YAML)")
    p.add_argument(
        "--estimate", action="store_true", help="FLOPs, GPU-hours and peak memory per job kind"
    )
    p.add_argument(
        "--gpu-tflops",
        type=float,
        default=estimate.H100_BF16_TFLOPS,
        metavar="T",
        help="peak TFLOP/s of one GPU (default: %(default)g, an H100 SXM's dense BF16)",
    )
    p.add_argument(
        "--mfu",
        type=float,
        default=None,
        help="fraction of the peak the jobs reach (default: measured by bench.gpu for the file's compute "
        "setting, else assumed: " + ", ".join(f"{k} {v:g}" for k, v in estimate.ASSUMED_MFU.items()) + ")",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def main(args: argparse.Namespace) -> int:
    if args.gpu_tflops <= 0:
        raise UserError(f"--gpu-tflops {args.gpu_tflops:g}: a GPU's peak is above 0")
    if args.mfu is not None and not 0 < args.mfu <= 1:
        raise UserError(f"--mfu {args.mfu:g}: a fraction of the peak, in (0, 1]")
    prepared = prepare(args.file, reads_images=False)
    sweep, spec = prepared.sweep, prepared.spec
    least = None
    if rounds.adds_seeds(prepared.spec):  # priced at the maximum, the minimum beside it
        least, sweep = rounds.extremes(sweep, resolve(spec.findings, sweep.cells)[0], rounds.Schedule.of(spec.grid))
    kinds = {c.job_key: c.evaluation for c in sweep.cells}
    by_method = Counter(j.method.name for j in sweep.pretrain_jobs.values())
    by_kind = Counter(kinds[key] for key in sweep.evaluation_jobs)
    out: dict[str, Any] = {
        "file": args.file,
        "name": spec.name,
        "cells": len(sweep.cells),
        "pretrain_jobs": dict(by_method),
        "evaluation_jobs": dict(by_kind),
    }
    rate = estimate.throughput(spec.compute, args.gpu_tflops, args.mfu)
    gpus = {"pretrain": spec.resources.pretrain.gpus, "evaluation": spec.resources.evaluation.gpus}
    table = estimate.rows(estimate.estimate(sweep)) if args.estimate else []
    low = estimate.rows(estimate.estimate(least)) if args.estimate and least else []
    if args.json:
        if args.estimate:
            out["estimate"] = {**as_json(table, rate), "gpus_per_job": gpus}
        if least is not None:
            out["minimum"] = {**_sizes(least), **({"estimate": as_json(low, rate)} if args.estimate else {})}
        print(json.dumps(out, indent=2))
        return 0
    at_most = " at the most seeds" if least is not None else ""
    print(
        f"{args.file}: valid. sweep {spec.name!r}: {len(sweep.cells)} cells, "
        f"{len(sweep.pretrain_jobs)} pretrain jobs, {len(sweep.evaluation_jobs)} evaluation jobs{at_most}"
    )
    if least is not None:
        seeds = spec.grid.seed
        hours = f", {_hours(estimate.total_hours(low, rate))} GPU-hours" if args.estimate else ""
        print(f"seeds until decided: at the fewest (every row at {seeds.min} seeds) {len(least.cells)} cells, "  # type: ignore[union-attr]
              f"{len(least.pretrain_jobs)} pretrain jobs{hours}; at the most (the findings' rows at {seeds.max} "  # type: ignore[union-attr]
              f"seeds) the jobs below")  # the maximum is what the counts below and the estimate are
    print("pretrain jobs by method: " + ", ".join(f"{k} {n}" for k, n in by_method.items()))
    print("evaluation jobs by kind: " + ", ".join(f"{k} {n}" for k, n in by_kind.items()))
    if args.estimate:
        print()
        print("\n".join(text(table, rate, gpus)))
    return 0


def _sizes(sweep: Expansion) -> dict[str, int]:
    return {"cells": len(sweep.cells), "pretrain_jobs": len(sweep.pretrain_jobs),
            "evaluation_jobs": len(sweep.evaluation_jobs)}


def as_json(table: list[estimate.Row], rate: estimate.Throughput) -> dict[str, Any]:
    out = []
    for r in table:
        hours = r.hours(rate)
        out.append(
            {
                "stage": r.stage,
                "row": r.name,
                "jobs": r.jobs,
                "samples_per_job": r.samples,
                "tflop_per_job": None if r.flops is None else r.flops / 1e12,
                "gpu_hours_per_job": hours,
                "gpu_hours": None if hours is None else r.jobs * hours,
                "peak_gib_per_job": r.peak / 2**30,
            }
        )
    totals = {
        stage: estimate.total_hours(table, rate, stage) for stage in ("pretrain", "evaluation")
    }
    return {
        "gpu_tflops": rate.tflops,
        "mfu": rate.mfu,
        "mfu_source": rate.source,
        "rows": out,
        "gpu_hours": {**totals, "total": estimate.total_hours(table, rate)},
    }


def _count(x: float) -> str:
    """1.28e6 -> '1.28M'."""
    for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= size:
            return f"{x / size:.3g}{suffix}"
    return f"{x:.3g}"


def _hours(h: float | None) -> str:
    return "-" if h is None else estimate.amount(h)


COLUMNS = "{:44} {:>5} {:>11} {:>10} {:>9} {:>9} {:>8}"


def text(table: list[estimate.Row], rate: estimate.Throughput, gpus: dict[str, float]) -> list[str]:
    """The assumptions, then the table, as printed lines."""
    asks = ", ".join(f"{stage} jobs {n:g} each" for stage, n in gpus.items())
    peak = estimate.H100_BF16_TFLOPS
    lines = [
        f"throughput: {rate.tflops:g} TFLOP/s per GPU x MFU {rate.mfu:g} = "
        f"{rate.tflops * rate.mfu:g} TFLOP/s (--gpu-tflops, --mfu)",
        f"  peak by default an H100 SXM's dense BF16 ({peak:g}); MFU {rate.source}",
        "FLOPs: matmuls and convolutions, counted by torch.utils.flop_counter on the workers'",
        "  modules at the jobs' shapes; peak memory: an estimate (parameters, gradients, optimizer",
        "  state, activations at the job's batch: orchestrator/estimate.py)",
        f"GPUs the file's resources ask: {asks}"
        + ("" if all(gpus.values()) else " (none: the job runs on CPUs)"),
        "",
    ]
    for stage, title in (("pretrain", "pre-training"), ("evaluation", "evaluation")):
        head = ("jobs", "samples/job", "TFLOP/job", "GPU-h/job", "GPU-h", "peak GiB")
        lines.append(COLUMNS.format(title, *head))
        for r in (r for r in table if r.stage == stage):
            tflop = "-" if r.flops is None else estimate.amount(r.flops / 1e12)
            hours = r.hours(rate)
            total = None if hours is None else r.jobs * hours
            lines.append(
                COLUMNS.format(
                    "  " + r.name,
                    r.jobs,
                    _count(r.samples),
                    tflop,
                    _hours(hours),
                    _hours(total),
                    f"{r.peak / 2**30:.1f}",
                )
            )
        jobs = sum(r.jobs for r in table if r.stage == stage)
        stage_hours = _hours(estimate.total_hours(table, rate, stage))
        lines.append(COLUMNS.format("  total", jobs, "", "", "", stage_hours, "").rstrip())
    lines.append(f"sweep: {_hours(estimate.total_hours(table, rate))} GPU-hours")
    return lines
