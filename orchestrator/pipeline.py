"""Pure: the order a plan's jobs run in, with no stage barrier.

An evaluation job is admitted once its own trunk is FINISHED (at once, for a trunk an earlier
run finished), not once every pretrain job of the sweep has ended: a fast trunk's probes do
not wait for the slowest pretrain job. Ready evaluation jobs go before pretrain jobs not yet
handed out, so a finished trunk's results come first. Pretrain jobs start the most expensive
first (by the estimate's cost, when given): a long job handed out last would run alone at the
end while the other GPUs idle (longest-processing-time-first list scheduling). The evaluation
jobs of a trunk that failed never run. `ray_driver` asks `next` whenever a slot may take a job and tells `ended`
how each job ended; nothing here knows Ray.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from contract.jobs import EvaluationJob, PretrainJob

Job = PretrainJob | EvaluationJob


class Pipeline:
    """Jobs by index: the pretrain jobs first, then the evaluation jobs. `cost`: pretrain key ->
    what it costs (the estimate's FLOPs); the dearest trunk is handed out first, jobs of equal
    or unknown cost in the order given."""

    def __init__(
        self,
        pretrain: Sequence[PretrainJob],
        evaluation: Sequence[EvaluationJob],
        trained: Iterable[str],
        cost: Mapping[str, float] | None = None,
    ):
        self.jobs: list[Job] = [*pretrain, *evaluation]
        cost = cost or {}
        dearest_first = sorted(range(len(pretrain)), key=lambda i: -cost.get(pretrain[i].key, 0.0))  # stable
        self.trunks: deque[int] = deque(dearest_first)  # pretrain jobs not yet handed out
        self.ready: deque[int] = deque()  # evaluation jobs whose trunk is FINISHED
        self.waiting: dict[str, list[int]] = {}  # trunk key -> its evaluation jobs
        finished = set(trained)
        for i, job in enumerate(evaluation, len(pretrain)):
            if job.pretrain_key in finished:
                self.ready.append(i)
            else:
                self.waiting.setdefault(job.pretrain_key, []).append(i)
        self.live: set[int] = set()  # handed out, not yet ended

    def next(self) -> int | None:
        """The job to run next, or None when none is ready now."""
        queue = self.ready or self.trunks
        if not queue:
            return None
        i = queue.popleft()
        self.live.add(i)
        return i

    def ended(self, i: int, finished: bool) -> list[int]:
        """Job `i` ended (`finished`: its runs are FINISHED); returns the evaluation jobs that
        will now never run (a failed trunk's)."""
        self.live.discard(i)
        job = self.jobs[i]
        if not isinstance(job, PretrainJob):
            return []
        dependants = self.waiting.pop(job.key, [])
        if finished:
            self.ready.extend(dependants)
            return []
        return dependants

    @property
    def done(self) -> bool:
        """Nothing left to hand out and nothing running (evaluations still waiting then have a
        trunk that is neither planned nor FINISHED: they cannot run)."""
        return not self.ready and not self.trunks and not self.live
