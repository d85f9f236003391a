"""A sweep from file to record: load, expand, ask MLflow what is done, run the rest on Ray.

Every check that can fail (the file, the images, the data roots, the cluster's resources)
runs before the first job is scheduled. Loading and expanding need neither MLflow nor Ray
(`monosweep validate` imports neither): the record and the driver are imported by the
functions that use them.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.images import image_problem
from contract.paper_images import PAPER_IMAGES, paper_image_problem
from orchestrator import faults
from orchestrator.errors import DriverBusy, SpecError
from orchestrator.evaluations import EVALUATIONS
from orchestrator.findings import resolve
from orchestrator.grid import Cell, Expansion, expand
from orchestrator.loading import load_spec, located
from orchestrator.plan import Plan, plan
from orchestrator.progress import Board
from orchestrator.record.schema import CELL, PRETRAIN, resolve_uri
from orchestrator.spec import SeedRange, Spec

if TYPE_CHECKING:
    from orchestrator.record.runs import Tracking


@dataclass
class Prepared:
    spec: Spec
    sweep: Expansion
    uri: str


@dataclass
class Outcome:
    plan: Plan
    finished: int  # cells FINISHED after the run
    total: int
    uri: str
    cells: list[Cell]  # the cells the run covered (seeds until decided: those planned so far)

    @property
    def complete(self) -> bool:
        return self.finished == self.total


def prepare(path: str | Path, reads_images: bool = True, data_roots: Mapping[str, str] | None = None) -> Prepared:
    """Load and expand an experiment file. `reads_images`: jobs will read the source images
    from here (run, smoke, resubmit), so the paper's images, which planning knows by their
    pinned hashes, must be here too, with those bytes; False (validate, plan, submit): they
    are not looked for. `data_roots` (dataset -> folder) replace the file's.

    Raises:
        SpecError: the file, or an image it names, is invalid; a finding names a row or column
            the grid does not have.
    """
    path = Path(path)
    spec = load_spec(path)
    if data_roots:
        spec = spec.model_copy(update={"data_roots": {**spec.data_roots, **data_roots}})
    check_images(spec, path, reads_images)
    try:
        sweep = expand(spec, path.parent)
    except (OSError, ValueError) as e:
        raise SpecError(f"{path}: grid.images: {e}") from None
    _, problems = resolve(spec.findings, sweep.cells)
    if isinstance(spec.grid.seed, SeedRange) and not spec.findings:
        problems.append((("grid", "seed"), "a seed range adds seeds until findings are decided: declare "
                                           "`findings`, or list the seeds"))
    if problems:
        raise SpecError(*located(path, problems))
    return Prepared(spec, sweep, resolve_uri(spec.tracking_uri))


def check_images(spec: Spec, path: Path, reads_images: bool = True) -> None:
    """Open and fully decode every source image of the spec (photos, and the images drawn from
    pools), and style transfer's contents and styles, before Ray starts or anything is recorded.
    The paper's images only when `reads_images` (see `prepare`): first that each is where the
    user keeps them, with upstream's bytes.

    Raises:
        SpecError: one located line per unusable image (missing paper image, other bytes than
            upstream's, unreadable, corrupt, too small, grey, smaller than the crop).
    """
    problems: list[tuple[tuple[Any, ...], str]] = []
    seen: dict[Path, str | None] = {}
    for i, images in enumerate(spec.grid.images):
        refs = images.photos or ()
        for j, file in enumerate(images.files(path.parent)):
            paper = j < len(refs) and refs[j] in PAPER_IMAGES
            if paper and not reads_images:
                continue  # planned from its pinned hash
            if file not in seen:  # an image in several sets is decoded once
                seen[file] = (paper and paper_image_problem(refs[j])) or image_problem(file, spec.network.input_size)
            if seen[file]:
                if images.photos is not None:
                    where, value = ("photos", j), images.photos[j]
                else:  # the pool's file, named from the pool's folder as the spec gives it
                    pool = Path(images.pool)  # type: ignore[arg-type]
                    where, value = ("pool",), str(pool / file.relative_to(path.parent / pool))
                problems.append((("grid", "images", i, *where), f"{value!r}: {seen[file]}"))
    for evaluation in spec.grid.evaluation:  # images an evaluation reads (style transfer's)
        problems += EVALUATIONS[evaluation.name].image_problems(spec, path.parent)
    if problems:
        raise SpecError(*located(path, problems))


def sqlite_warning(uri: str, parallel: float) -> str | None:
    """Several writers on one SQLite file lock it: say so when more than two jobs may write."""
    if uri.startswith("sqlite:") and parallel > 2:
        return (f"warning: up to {parallel:.0f} jobs at once will write to the SQLite file {uri}; "
                "for parallel and cluster runs use a tracking server (`mlflow server`, MLFLOW_TRACKING_URI)")
    return None


def check_local_data(prepared: Prepared, path: Path) -> None:
    """Raises SpecError when a dataset's root (probed, drawn from, or trained on with labels)
    is missing on this machine."""
    roots = {dataset: root for j in prepared.sweep.evaluation_jobs.values()
             for dataset, root in EVALUATIONS[j.evaluation].labelled_data(j).items()}
    for job in prepared.sweep.pretrain_jobs.values():
        for source in (job.drawn, job.labels):
            if source is not None:
                roots[source.dataset] = source.data_root
    problems = [
        f"{path}: data_roots.{dataset}: no folder at {root} "
        f"(install Debian's dataset-fashion-mnist, or set data_roots.{dataset})"
        for dataset, root in roots.items()
        if not Path(root).is_dir()
    ]
    if problems:
        raise SpecError(*problems)


def current_plan(prepared: Prepared, only: set[str] | None = None) -> Plan:
    """Two MLflow queries (finished cells, finished pretrain runs), whatever the grid's size.

    Raises:
        StoreUnreachable: the tracking store is not there.
    """
    from orchestrator.record import queries, store

    store.check_reachable(prepared.uri)
    experiment = store.experiment_id(prepared.uri, prepared.spec.name)
    cells = set(queries.finished(prepared.uri, experiment, CELL))
    pretrain = set(queries.finished(prepared.uri, experiment, PRETRAIN))
    if only is not None:  # everything outside the selection counts as done
        cells |= {c.key for c in prepared.sweep.cells if c.key not in only}
    return plan(prepared.sweep, cells, pretrain)


def trial_storage(storage: str, name: str) -> str:
    """Where Ray Tune keeps trials: an object-store URI as it is, a path made absolute."""
    if "://" in storage:
        return f"{storage.rstrip('/')}/{name}"
    return str((Path(storage) / name).resolve())


def finished_cells(prepared: Prepared, experiment: str | None) -> int:
    """How many of the sweep's cells have a FINISHED run."""
    from orchestrator.record import queries

    return len(set(queries.finished(prepared.uri, experiment, CELL)) & {c.key for c in prepared.sweep.cells})


class Heartbeat(threading.Thread):
    """Stamps the sweep run every few seconds while the driver lives."""

    def __init__(self, tracking: Tracking):
        super().__init__(daemon=True)
        self.tracking, self.stopped = tracking, threading.Event()

    def run(self) -> None:
        from orchestrator.record import runs

        while not self.stopped.wait(runs.BEAT_EVERY):
            runs.heartbeat(self.tracking)


def run(
    prepared: Prepared, address: str | None = None, only: set[str] | None = None, todo: Plan | None = None,
    tags: dict[str, str] | None = None,
) -> Outcome:
    """Run what is not finished (of the cells in `only`, when given; `todo` is the plan if the
    caller has just asked MLflow for it; `tags` go on the experiment and every run). With
    nothing to do, Ray is not even started. Runs a lost driver left RUNNING are marked KILLED,
    then rerun.

    Cancelled (Ctrl-C, SIGTERM), it leaves no run RUNNING, in this order: the sweep run is
    marked KILLED (a job that starts from then on sees it and does not run: `runs.start_run`),
    the trials are stopped and their processes waited for, and a last pass marks every run
    still RUNNING KILLED. Signals wait while it does (a second Ctrl-C cannot cut it short).

    Raises:
        ClusterError: the cluster lacks the resources the spec asks for.
        DriverBusy: another driver runs this sweep (its heartbeat is fresh).
        KeyboardInterrupt: cancelled.
    """
    from orchestrator.record import runs, store

    spec, sweep = prepared.spec, prepared.sweep
    todo = todo or current_plan(prepared, only)
    experiment = store.experiment_id(prepared.uri, spec.name)
    if todo.empty:
        return Outcome(todo, finished_cells(prepared, experiment), len(sweep.cells), prepared.uri, sweep.cells)
    age = runs.live_driver(prepared.uri, experiment)
    if age is not None:
        raise DriverBusy(f"sweep {spec.name!r} is being run by another driver (heartbeat {age:.0f} s ago)")
    runs.kill_running(prepared.uri, experiment, "driver lost: the run was left RUNNING")

    from orchestrator import ray_driver

    tracking: Tracking | None = None
    beat: Heartbeat | None = None
    status = "FAILED"
    try:
        faults.strike_driver(faults.active(spec.faults), spec.name)
        parallel = ray_driver.connect(address or spec.ray_address, [spec.resources.pretrain, spec.resources.evaluation])
        if warning := sqlite_warning(prepared.uri, parallel):
            print(warning, file=sys.stderr)
        tracking = runs.open_sweep(
            spec.name,
            prepared.uri,
            {
                "spec.json": spec.model_dump_json(indent=2),
                "cells.json": json.dumps([c.model_dump() for c in sweep.cells], indent=1),
            },
            system_metrics=spec.system_metrics,
            tags=tags,
        )
        runs.heartbeat(tracking)
        beat = Heartbeat(tracking)
        beat.start()
        done = _jobs(prepared, todo, tracking, ray_driver, parallel)
        status = "FINISHED" if done == len(sweep.cells) else "FAILED"
        return Outcome(todo, done, len(sweep.cells), prepared.uri, sweep.cells)
    except BaseException:
        status = "KILLED"
        with uninterrupted():
            if beat is not None:
                beat.stopped.set()
            if tracking is not None:
                runs.close_sweep(tracking, "KILLED")  # first: jobs that start from now on stand down
            ray_driver.stop()
            runs.kill_running(prepared.uri, tracking.experiment_id if tracking else experiment,
                              "cancelled: the driver was stopped")
        raise
    finally:
        if beat is not None:
            beat.stopped.set()
        if tracking is not None:
            runs.close_sweep(tracking, status)


def _jobs(prepared: Prepared, todo: Plan, tracking: Tracking, ray_driver: Any, slots: float) -> int:
    """The pretrain jobs, and each evaluation job as soon as its trunk is FINISHED (no barrier
    between the stages: `orchestrator.pipeline`); the number of the sweep's cells FINISHED at
    the end."""
    spec = prepared.spec
    costs = trunk_costs(todo)  # the start order, and the ETA's weights
    board = Board(
        {"pretrain": len(todo.pretrain), "evaluation": len(todo.evaluation)}, todo.pending_cells, costs=costs
    )
    ray_driver.run_jobs(
        todo.pretrain, todo.evaluation, set(todo.reused_pretrain), tracking, spec.resources, spec.retries,
        trial_storage(spec.storage, spec.name), board, faults.active(spec.faults), slots, costs,
    )
    return finished_cells(prepared, tracking.experiment_id)


def trunk_costs(todo: Plan) -> dict[str, float]:
    """Pretrain key -> its estimated FLOPs, the order they start in (dearest first): the plan's
    estimate (orchestrator.estimate, which imports torch here and measures each job shape once
    on the meta device: 2.9 s of CPU for the quickstart's 9 jobs, 3.6 s for the paper grid's
    124, torch's import included, next to minutes to hours of training); nothing to order with
    one pretrain job or none."""
    if len(todo.pretrain) < 2:
        return {}
    from orchestrator import estimate

    return {job.key: e.flops or 0.0 for job, e in zip(todo.pretrain, estimate.each(todo.pretrain), strict=True)}


@contextmanager
def uninterrupted() -> Iterator[None]:
    """SIGINT and SIGTERM are noted, not raised, while the block runs (in the main thread):
    the cancellation's bookkeeping is not itself cancelled."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in kept:
        signal.signal(sig, lambda *_: print("\nstopping: marking the runs KILLED first", file=sys.stderr))
    try:
        yield
    finally:
        for sig, handler in kept.items():
            signal.signal(sig, handler)
