"""Orchestration: planning a 10,000-cell sweep (YAML validation, grid expansion and keys, the
MLflow skip query against a real SQLite store holding every cell as a FINISHED run, the plan),
against the 5 s budget, against `search_runs` (the former skip query, which builds every run)
and against asking MLflow once per key; then the Ray driver's overhead
per job (trivial `random` pretrain jobs through run_jobs against the same jobs called directly);
and the paper grid's makespan on 8, 16 and 64 simulated GPUs, its pretrain jobs started in grid
order against the dearest first (orchestrator.pipeline's cost-aware order), each job lasting the
estimate's hours (also with the file's methods listed longest last, where the order matters most).

    python -m bench.orchestration [--no-driver]
"""

from __future__ import annotations

import heapq
import random
import sqlite3
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

from bench.common import median, parser, report, table
from orchestrator import estimate
from orchestrator.grid import expand
from orchestrator.jobs import flatten, pretrain_params, run_pretrain
from orchestrator.loading import load_spec
from orchestrator.pipeline import Pipeline
from orchestrator.plan import Plan, plan
from orchestrator.record import queries, runs, schema, store
from orchestrator.record.recorder import MlflowRecorder
from orchestrator.sweep import current_plan, prepare

BUDGET_S = 5.0


def write_spec(folder: Path, augmentations: int, seeds: int, name: str = "bench") -> Path:
    """RotNet on 4 photos x `augmentations` x `seeds` x 5 layers (+ random, collapsed)."""
    variants = ", ".join(f"{{preset: full, rotation: {r}}}" for r in range(1, augmentations + 1))
    path = folder / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        name: {name}
        grid:
          method: [random, {{name: rotnet, epochs: 1}}]
          images: [astronaut, chelsea, coffee, rocket]
          augmentation: [{variants}]
          layer: [conv1, conv2, conv3, conv4, conv5]
          probe_dataset: [fashion_mnist]
          seed: {list(range(seeds))}
        network: {{width: 0.25, input_size: 64}}
        probe: {{preset: fast}}
        tracking_uri: sqlite:///{folder / "mlflow.db"}
        storage: {folder / "ray"}
        """)
    )
    return path


def fill_store(uri: str, db_path: Path, prepared) -> tuple[int, float]:
    """Every cell and pretrain job of the sweep as a FINISHED run: one real run of each kind
    through orchestrator.record (the params, tags and metrics a worker writes), then cloned row
    by row in SQLite (MLflow's API takes ~80 ms a run here; 12,000 runs would take 16 minutes).
    Returns (runs, seconds)."""
    start = time.perf_counter()
    sweep = prepared.sweep
    tracking = runs.open_sweep(prepared.spec.name, uri, {})
    job = next(iter(sweep.pretrain_jobs.values()))
    pretrain_run, _ = runs.start_run(
        tracking, "pretrain", job.key, job.label, tracking.sweep_run_id, pretrain_params(job), {}
    )
    recorder = MlflowRecorder(uri, {None: pretrain_run})
    for step in range(20, 220, 20):  # a pretext-loss point every 20 steps
        recorder.metrics({"pretext_loss": 1.0, "lr": 0.1, "samples_per_s": 100.0, "epoch": 0}, step)
    runs.end_run(uri, pretrain_run)
    probe_job = next(iter(sweep.evaluation_jobs.values()))
    cell = probe_job.cells[0]
    base = probe_job.model_dump(
        mode="json", exclude={"key", "label", "cells", "data_root", "pretrain_key"}
    )
    probe_run, _ = runs.start_run(
        tracking,
        "probe",
        cell.key,
        cell.label,
        pretrain_run,
        {**cell.coordinates, **flatten("", base)},
        {},
    )
    recorder = MlflowRecorder(uri, {None: probe_run})
    for epoch in range(1, 13):  # the fast preset's 12 epochs
        recorder.metrics(
            {"train_loss": 1.0, "train_top1": 50.0, "lr": 0.01, "top1": 50.0, "top5": 90.0}, epoch
        )
    runs.end_run(uri, probe_run)

    db = sqlite3.connect(db_path)
    clone(db, pretrain_run, [k for k in sweep.pretrain_jobs if k != job.key])
    clone(db, probe_run, [c.key for c in sweep.cells if c.key != cell.key])
    db.commit()
    db.close()
    return len(sweep.pretrain_jobs) + len(sweep.cells), time.perf_counter() - start


def clone(db: sqlite3.Connection, template: str, keys: list[str]) -> None:
    """Copies of run `template` (its row and its tags, params, metrics), one per key."""
    ids = [uuid.uuid4().hex for _ in keys]
    for name in ("runs", "tags", "params", "metrics", "latest_metrics"):
        columns = [r[1] for r in db.execute(f"pragma table_info('{name}')")]
        rows = db.execute(f"select * from {name} where run_uuid = ?", (template,)).fetchall()
        at = columns.index("run_uuid")
        copies = []
        for run_id, key in zip(ids, keys, strict=True):
            for row in rows:
                row = list(row)
                row[at] = run_id
                if name == "tags" and row[columns.index("key")] == schema.KEY:
                    row[columns.index("value")] = key
                if name == "runs":
                    row[columns.index("artifact_uri")] = row[columns.index("artifact_uri")].replace(
                        template, run_id
                    )
                copies.append(row)
        marks = ",".join("?" * len(columns))
        db.executemany(f"insert into {name} ({','.join(columns)}) values ({marks})", copies)


def timed(call, *args):
    """(result, wall seconds, CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = call(*args)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def planning(folder: Path, augmentations: int, seeds: int, repeats: int) -> tuple[list[list], dict]:
    path = write_spec(folder, augmentations, seeds)
    prepared = prepare(path)
    uri = prepared.uri
    runs, fill_s = fill_store(uri, folder / "mlflow.db", prepared)
    experiment = store.experiment_id(uri, prepared.spec.name)
    names = ("validate", "expand", "skip query", "plan")
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    queries.finished(
        uri, experiment, "pretrain"
    )  # warm: the client's engine, the file in the page cache

    def skip_query() -> tuple[set[str], set[str]]:
        return set(queries.finished(uri, experiment, "probe")), set(
            queries.finished(uri, experiment, "pretrain")
        )

    for _ in range(repeats):
        spec, *t = timed(load_spec, path)
        times = [t]
        sweep, *t = timed(expand, spec, path.parent)
        times.append(t)
        (cells, pretrain), *t = timed(skip_query)
        times.append(t)
        todo, *t = timed(plan, sweep, cells, pretrain)
        times.append(t)
        assert todo.empty and todo.done_cells == len(sweep.cells), "every cell should be found done"
        for name, (w, c) in zip(names, times, strict=True):
            wall[name].append(w)
            cpu[name].append(c)
    _, end_to_end, _ = timed(
        lambda: current_plan(prepare(path))
    )  # what `monosweep run` does before Ray
    # The baseline the design avoids: one MLflow query per cell key (timed on a sample).
    keys = random.Random(0).sample([c.key for c in sweep.cells], min(20, len(sweep.cells)))
    _, per_key_wall, per_key_cpu = timed(
        lambda: [
            store.search(
                uri, experiment, f"tags.`{schema.KEY}` = '{key}' and attributes.status = 'FINISHED'"
            )
            for key in keys
        ]
    )
    scale = len(sweep.cells) / len(keys)
    # The former skip query: search_runs, which builds every run with all its data.
    searched = [
        timed(lambda: (queries.searched_finished(uri, experiment, "probe"),
                       queries.searched_finished(uri, experiment, "pretrain")))
        for _ in range(repeats)
    ]  # fmt: skip
    assert [set(d) for d in searched[0][0]] == [cells, pretrain], "both queries agree"
    searched_wall = median([w for _, w, _ in searched])
    searched_cpu = median([c for *_, c in searched])

    med = {k: (median(wall[k]), median(cpu[k])) for k in names}
    total_wall, total_cpu = sum(w for w, _ in med.values()), sum(c for _, c in med.values())
    skip_wall, skip_cpu = med["skip query"]
    results = {
        "cells": len(sweep.cells),
        "pretrain_jobs": len(sweep.pretrain_jobs),
        "evaluation_jobs": len(sweep.evaluation_jobs),
        "finished_runs_in_store": runs,
        "store_fill_s": fill_s,
        **{f"{k.replace(' ', '_')}_s": w for k, (w, _) in med.items()},
        **{f"{k.replace(' ', '_')}_cpu_s": c for k, (_, c) in med.items()},
        "total_s": total_wall,
        "total_cpu_s": total_cpu,
        "end_to_end_s": end_to_end,
        "budget_s": BUDGET_S,
        "per_key_total_s_extrapolated": per_key_wall * scale,
        "per_key_total_cpu_s_extrapolated": per_key_cpu * scale,
        "x_vs_per_key_queries_cpu": per_key_cpu * scale / skip_cpu,
        "search_runs_skip_query_s": searched_wall,
        "search_runs_skip_query_cpu_s": searched_cpu,
        "x_vs_search_runs_cpu": searched_cpu / skip_cpu,
    }
    n = f"{len(sweep.cells):,} cells, {runs:,} FINISHED runs"
    rows = [
        [
            f"plan a sweep ({n}): validate + expand + skip query + plan",
            f"{BUDGET_S:.0f} (budget)",
            total_wall,
            total_cpu,
            BUDGET_S / total_cpu,
        ],
        *[[f"  {k}", "", w, c, ""] for k, (w, c) in med.items()],
        [
            "  end to end, as `monosweep run` does before Ray (prepare + current_plan)",
            "",
            end_to_end,
            "",
            "",
        ],
        [
            f"skip query vs a search_runs per cell key ({len(keys)} timed, x{scale:,.0f})",
            per_key_cpu * scale,
            skip_wall,
            skip_cpu,
            per_key_cpu * scale / skip_cpu,
        ],
        [
            "skip query: one SELECT of run ids and keys vs search_runs (every run built, CPU s)",
            searched_cpu,
            skip_wall,
            skip_cpu,
            searched_cpu / skip_cpu,
        ],
    ]
    return rows, results


def driver_overhead(folder: Path, jobs: int) -> tuple[list[list], dict]:
    """`random` pretrain jobs (a trunk, its filter picture, its checkpoint, MLflow runs): called
    directly one after another, then the same number of fresh ones through run_jobs, one at a
    time (each trial asks for every CPU)."""
    from orchestrator import ray_driver
    from orchestrator.progress import Board
    from orchestrator.spec import Resources, StageResources

    path = folder / "driver.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        name: driver
        grid:
          method: [random]
          images: [astronaut]
          augmentation: [none]
          layer: [conv1]
          probe_dataset: [fashion_mnist]
          seed: {list(range(2 * jobs))}
        network: {{width: 0.25, input_size: 64}}
        tracking_uri: sqlite:///{folder / "driver.db"}
        """)
    )
    prepared = prepare(path)
    tracking = runs.open_sweep("driver", prepared.uri, {})
    all_jobs = list(prepared.sweep.pretrain_jobs.values())
    direct, through_ray = all_jobs[:jobs], all_jobs[jobs:]
    run_pretrain(direct[0], tracking)  # warm: imports, the MLflow store, the photo
    own = []
    for job in direct[1:] + [direct[0]]:
        t = time.perf_counter()
        run_pretrain(job, tracking)
        own.append(time.perf_counter() - t)
    import os

    everything = Resources(cpus=float(os.cpu_count() or 1))
    t = time.perf_counter()
    ray_driver.connect(None, [everything])
    startup = time.perf_counter() - t
    board = Board({"pretrain": len(through_ray)}, 0)
    t = time.perf_counter()
    ray_driver.run_jobs(
        through_ray, [], set(), tracking, StageResources(pretrain=everything, evaluation=everything), 0,
        str(folder / "ray"), board, [], 1,
    )
    stage = time.perf_counter() - t
    import ray

    ray.shutdown()
    own_s = median(own)
    overhead = stage / len(through_ray) - own_s
    results = {
        "jobs": jobs,
        "own_s_per_job": own_s,
        "ray_startup_s": startup,
        "stage_s": stage,
        "overhead_s_per_job": overhead,
        "x_job_time_through_ray": stage / (own_s * len(through_ray)),
    }
    rows = [
        [
            f"driver: {jobs} trivial jobs through run_jobs vs called directly (s per job, wall)",
            own_s,
            stage / len(through_ray),
            "",
            own_s / (stage / len(through_ray)),
        ],
        [f"  overhead per job {overhead:.2f} s; Ray start {startup:.1f} s once", "", "", "", ""],
    ]
    return rows, results


ROOT = Path(__file__).resolve().parents[1]
PAPER_METHODS = "method: [random, supervised, bigan, rotnet, deepcluster]"
LONGEST_LAST = "method: [random, supervised, rotnet, deepcluster, bigan]"  # BiGAN: 224 of the hours


def makespan(todo: Plan, hours: list[float], gpus: int, cost: dict[str, float] | None) -> float:
    """Hours from the first job to the last on `gpus` GPUs, one job a GPU (as the paper grid's
    resources ask), job i lasting hours[i] (Pipeline's indices): whenever a GPU is free it takes
    what Pipeline hands out next, as ray_driver's searcher asks it; every job finishes."""
    pipeline = Pipeline(todo.pretrain, todo.evaluation, todo.reused_pretrain, cost)
    clock, running = 0.0, []  # running: a heap of (end, job)
    while True:
        while len(running) < gpus and (i := pipeline.next()) is not None:
            heapq.heappush(running, (clock + hours[i], i))
        if not running:
            return clock
        clock, i = heapq.heappop(running)
        pipeline.ended(i, finished=True)


def makespans(folder: Path, name: str, gpu_counts: tuple[int, ...]) -> tuple[list[list], dict]:
    """Grid order against cost order, for the file as it is and with its methods listed longest
    last; the hours are the estimate's (the file's compute setting's MFU, assumed or measured),
    the same for both orders, so their ratio does not depend on it."""
    source = (ROOT / name).read_text()
    variants = {"as written": source, "methods listed longest last": source.replace(PAPER_METHODS, LONGEST_LAST)}
    rows, results = [], {}
    for variant, text in variants.items():
        if variant != "as written" and text == source:
            continue  # not the paper grid's methods line: nothing to reorder
        path = folder / f"makespan-{len(results)}.yaml"
        path.write_text(text)
        prepared = prepare(path, reads_images=False)  # a simulation: no job reads the paper's images
        todo = plan(prepared.sweep, set(), set())
        jobs = [*todo.pretrain, *todo.evaluation]
        rate = estimate.throughput(prepared.spec.compute)
        flops = [e.flops or 0.0 for e in estimate.each(jobs)]
        hours = [rate.hours(f) for f in flops]
        cost = {job.key: f for job, f in zip(todo.pretrain, flops, strict=False)}
        total = sum(hours)
        for gpus in gpu_counts:
            grid, ordered = makespan(todo, hours, gpus, None), makespan(todo, hours, gpus, cost)
            bound = max(total / gpus, max(hours))
            results[f"{variant}, {gpus} GPUs"] = {
                "grid_order_h": grid, "cost_order_h": ordered, "ratio": grid / ordered, "lower_bound_h": bound,
                "jobs": len(jobs), "total_gpu_h": total, "mfu": rate.mfu, "mfu_source": rate.source,
            }
            rows.append([f"{name} {variant}: {len(jobs)} jobs, {total:,.0f} GPU-h, on {gpus} GPUs",
                         grid, ordered, grid / ordered, bound])
    return rows, results


def main(argv: list[str] | None = None) -> None:
    p = parser("orchestration", __doc__.splitlines()[0])
    p.add_argument(
        "--augmentations",
        type=int,
        default=50,
        help="grid size: 4 photos x this x seeds x 5 layers",
    )
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--no-driver", action="store_true", help="skip the Ray driver overhead part")
    p.add_argument("--driver-jobs", type=int, default=6)
    args = p.parse_args(argv)
    device = "cpu"
    repeats = args.repeats or (1 if args.tiny else 3)
    augmentations, seeds = (2, 2) if args.tiny else (args.augmentations, args.seeds)
    with tempfile.TemporaryDirectory() as tmp:
        rows, results = planning(Path(tmp), augmentations, seeds, repeats)
        out = {"planning": results}
        if not (args.tiny or args.no_driver):
            more, out["driver"] = driver_overhead(Path(tmp), args.driver_jobs)
            rows += more
        # Tiny: the quickstart (its estimate takes a second), on 2 and 4 GPUs.
        name, gpus = ("examples/quickstart.yaml", (2, 4)) if args.tiny else ("experiments.yaml", (8, 16, 64))
        simulated, out["makespan"] = makespans(Path(tmp), name, gpus)
    text = table(
        "Orchestration (wall clock on a shared machine; CPU time is what an idle one would see)",
        ["what", "baseline s", "ours s (wall)", "ours s (CPU)", "x"],
        rows,
    )
    text += "\n\n" + table(
        "Makespan, simulated: one job a GPU, each lasting the estimate's hours (its MFU as `plan --estimate`)",
        ["plan", "grid order h", "dearest pretrain first h", "x (grid / cost)", "lower bound h"],
        simulated,
    )
    report("orchestration", args, device, text, out)


if __name__ == "__main__":
    main()
