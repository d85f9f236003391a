"""The order jobs run in: an evaluation job waits for its own trunk, never for the others
(`orchestrator.pipeline`, pure; the Ray side is tests/test_operations.py's no-barrier test)."""

from __future__ import annotations

from pathlib import Path

import yaml

from orchestrator.grid import expand
from orchestrator.pipeline import Pipeline
from orchestrator.plan import plan
from orchestrator.spec import Spec
from tests.conftest import TINY


def tiny_plan(tmp_path: Path, trained: set[str] = frozenset()):
    sweep = expand(
        Spec.model_validate(yaml.safe_load(TINY), context={"base_dir": tmp_path}), tmp_path
    )
    return sweep, plan(sweep, set(), set(trained))


def drain(pipeline: Pipeline) -> list[int]:
    out = []
    while (i := pipeline.next()) is not None:
        out.append(i)
    return out


def test_an_evaluation_starts_when_its_own_trunk_finishes(tmp_path):
    """Mutation: admit evaluation jobs only once every pretrain job has ended (the barrier
    back) and this fails."""
    _, todo = tiny_plan(
        tmp_path
    )  # three trunks (random, rotnet full, rotnet none), three probe jobs
    pipeline = Pipeline(todo.pretrain, todo.evaluation, todo.reused_pretrain)
    trunks = drain(pipeline)
    assert [pipeline.jobs[i] for i in trunks] == todo.pretrain  # no evaluation before a trunk
    first = trunks[0]
    assert pipeline.ended(first, finished=True) == []
    (probe,) = drain(pipeline)  # while the other two trunks still train
    assert pipeline.jobs[probe].pretrain_key == pipeline.jobs[first].key
    assert not pipeline.done


def test_ready_evaluations_go_before_trunks_not_yet_started(tmp_path):
    _, todo = tiny_plan(tmp_path)
    pipeline = Pipeline(todo.pretrain, todo.evaluation, [])
    first = pipeline.next()
    pipeline.ended(first, finished=True)
    assert pipeline.jobs[pipeline.next()].pretrain_key == pipeline.jobs[first].key


def test_a_failed_trunk_orphans_its_evaluations_and_the_run_ends(tmp_path):
    _, todo = tiny_plan(tmp_path)
    pipeline = Pipeline(todo.pretrain, todo.evaluation, [])
    trunks = drain(pipeline)
    orphans = pipeline.ended(trunks[0], finished=False)
    assert [pipeline.jobs[i].pretrain_key for i in orphans] == [pipeline.jobs[trunks[0]].key]
    for i in trunks[1:]:
        pipeline.ended(i, finished=True)
    probes = drain(pipeline)
    assert len(probes) == 2 and not pipeline.done  # two probe jobs run
    for i in probes:
        pipeline.ended(i, finished=True)
    assert pipeline.done and pipeline.next() is None


def test_trunks_finished_before_the_run_release_their_evaluations_at_once(tmp_path):
    sweep, _ = tiny_plan(tmp_path)
    _, todo = tiny_plan(tmp_path, set(sweep.pretrain_jobs))  # a resubmit: every trunk reused
    pipeline = Pipeline(todo.pretrain, todo.evaluation, todo.reused_pretrain)
    assert not todo.pretrain and len(drain(pipeline)) == len(todo.evaluation) == 3


def test_the_dearest_trunk_starts_first_and_a_finished_trunks_evaluations_still_go_first(tmp_path):
    """Cost-aware order. Mutation tried: Pipeline ignoring `cost` (grid order): fails here."""
    _, todo = tiny_plan(tmp_path)  # grid order: random, rotnet full, rotnet none
    random, full, none = todo.pretrain
    pipeline = Pipeline(todo.pretrain, todo.evaluation, [], cost={none.key: 3.0, random.key: 2.0, full.key: 1.0})
    first = pipeline.next()
    assert pipeline.jobs[first] == none
    pipeline.ended(first, finished=True)
    assert pipeline.jobs[pipeline.next()].pretrain_key == none.key  # its probes before any trunk
    assert [pipeline.jobs[i] for i in drain(pipeline)] == [random, full]


def test_equal_or_unknown_costs_keep_the_order_given(tmp_path):
    _, todo = tiny_plan(tmp_path)
    random, full, none = todo.pretrain
    pipeline = Pipeline(todo.pretrain, todo.evaluation, [], cost={full.key: 1.0, none.key: 1.0})
    assert [pipeline.jobs[i] for i in drain(pipeline)] == [full, none, random]


TOY = """\
name: toy
grid:
  method:
    - random
    - {name: rotnet, samples: 64, epochs: 1, batch_size: 32}
    - {name: rotnet, samples: 256, epochs: 1, batch_size: 32}
    - {name: deepcluster, samples: 128, epochs: 1, batch_size: 32, k: 8, pca_dim: 16}
  images: [astronaut]
  augmentation: [full]
  layer: [conv1]
  probe_dataset: [fashion_mnist]
network: {width: 0.25, input_size: 64}
"""


def test_a_run_starts_its_pretrain_jobs_dearest_first_by_the_estimate(write_spec):
    """What `monosweep run` hands Ray first on a toy plan: the costs are the estimate's
    (sweep.trunk_costs), so the 256-sample RotNet goes before the 64-sample one, DeepCluster
    (clustering every epoch) where its FLOPs put it, the untrained random trunk last."""
    from orchestrator.estimate import each
    from orchestrator.sweep import prepare, trunk_costs

    sweep = prepare(write_spec(TOY)).sweep
    todo = plan(sweep, set(), set())
    cost = trunk_costs(todo)
    pipeline = Pipeline(todo.pretrain, todo.evaluation, [], cost)
    order = [pipeline.jobs[i] for i in drain(pipeline)]
    flops = {job.key: e.flops for job, e in zip(todo.pretrain, each(todo.pretrain), strict=True)}
    assert [flops[j.key] for j in order] == sorted(flops.values(), reverse=True)
    names = [j.coordinates["method"] for j in order]
    assert names.index("rotnet#2") < names.index("rotnet#1") and names[-1] == "random"
    assert [j.coordinates["method"] for j in todo.pretrain][0] == "random"  # grid order was otherwise
