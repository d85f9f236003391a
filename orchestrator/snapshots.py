"""The trunks one pretrain job gives its evaluations: its own (`checkpoint.pt`), and, for a
method with `snapshots`, its trunk after each of those sample counts (a training-budget curve
from one run, contract.methods.Snapshots).

A snapshot's key says what it is, the trunk of run K after n samples: content_key("snapshot",
{pretrain: K, samples: n}), so its cells' keys are content keys like any trunk's. Its evaluation
jobs wait for, and read from, run K (`pretrain_key` K, `checkpoint` the snapshot's artifact);
its rows are named `METHOD@n`, and the run's own `METHOD@budget`. K's key holds the snapshot
list (a run saves what its settings ask), so a FINISHED run of K holds every snapshot its cells
read. A retried run resumes from its latest `resume.pt`, and the loop records a snapshot before
the resume checkpoint of its step (workers.training.save): the snapshots up to the point it
resumes from are in the run already, the later ones it takes as it gets to them. A smoke run
reads the capped run's own trunk (orchestrator/smoke.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.jobs import PretrainJob
from contract.methods import snapshot_artifact
from orchestrator.keys import content_key

CHECKPOINT = "checkpoint.pt"  # a pretrain run's own trunk, at the end of its training


@dataclass(frozen=True)
class Trunk:
    """A trunk evaluations read: `job` as the evaluation kinds see it (its key and label are
    this trunk's), held by the run of pretrain job `run_key` as artifact `checkpoint`."""

    job: PretrainJob
    run_key: str
    checkpoint: str = CHECKPOINT


def trunks(job: PretrainJob) -> list[Trunk]:
    """The job's snapshots in ascending samples, then its own trunk (the largest budget, its
    method labelled `METHOD@budget` by the grid)."""
    taken: tuple[int, ...] = getattr(job.method, "snapshots", ())
    views = []
    for samples in taken:
        method = str(job.coordinates["method"]).removesuffix(f"@{job.method.budget}") + f"@{samples}"  # type: ignore[union-attr]
        view = job.model_copy(update={
            "key": content_key("snapshot", {"pretrain": job.key, "samples": samples}),
            "label": method + job.label[len(str(job.coordinates["method"])):],
            "coordinates": {**job.coordinates, "method": method},
        })
        views.append(Trunk(view, job.key, snapshot_artifact(samples)))
    return [*views, Trunk(job, job.key)]


def budget_suffix(method: object) -> str:
    """`@budget` for a method whose run is read at snapshots too: every row of it says its samples."""
    return f"@{method.budget}" if getattr(method, "snapshots", ()) else ""  # type: ignore[attr-defined]
