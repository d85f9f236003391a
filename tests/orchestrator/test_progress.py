"""The live line counts the reports jobs send while they run: its share of the work rises and
its ETA falls between jobs' ends (`orchestrator.progress`, pure, on a fake clock)."""

from __future__ import annotations

import re

from contract.recorder import MemoryRecorder
from orchestrator.progress import Board, Reporting


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def figures(line: str) -> tuple[float, float | None]:
    """(share of the work done, ETA in seconds) from a live line."""
    share = float(re.search(r"(\d+)% of the work", line).group(1))
    eta = re.search(r"ETA (?:(\d+)m)?(\d+)s", line)
    return share, None if eta is None else int(eta.group(1) or 0) * 60 + int(eta.group(2))


def test_reports_from_inside_jobs_move_the_line_and_its_eta_falls():
    """Two slots, two pretrain jobs then two probe jobs, each job 100 s at a steady rate,
    reporting every 10 s. Mutation: drop the reports (`Board.reported` a no-op, or `Reporting`
    passing nothing on) and the share stays at 0% and the ETA unknown until a job ends."""
    clock = Clock()
    board = Board({"pretrain": 2, "probe": 2}, total_cells=10, clock=clock)
    board.started("a", "pretrain")
    board.started("b", "pretrain")
    seen = []
    for t in range(10, 100, 10):
        clock.now = t
        board.reported("a", {"progress": t / 100, "step": t, "epoch": 0, "samples_per_s": 50.0})
        board.reported("b", {"progress": t / 100, "step": t, "epoch": 0, "samples_per_s": 50.0})
        seen.append(figures(board.line()))
    shares, etas = [s for s, _ in seen], [e for _, e in seen]
    assert shares == sorted(shares) and shares[0] < shares[-1] and shares[0] > 0
    assert None not in etas and all(
        b < a for a, b in zip(etas, etas[1:], strict=False)
    )  # falls at every report
    assert etas[-1] <= 110  # 10 s of the trunks and 100 s of the probe jobs left
    assert "100 samples/s" in board.line()
    clock.now = 100
    board.finished("a", True)
    board.finished("b", True)
    assert "jobs: 2 done, 0 running, 0 failed, 2 pending" in board.line()


def test_pending_trunks_are_weighed_by_their_estimated_cost():
    """One slot, trunks costing 10, 1 and 1 (the estimate's FLOPs), the dearest started first, as
    the run orders them: halfway through it at 50 s (10 s per unit of cost), the two cheap ones
    are 20 s, not two more 100-second jobs. Mutation: ignore `costs` (every pending trunk at the
    running one's time) and the ETA reads 250 s."""
    clock = Clock()
    board = Board({"pretrain": 3}, total_cells=3, clock=clock, costs={"big": 10.0, "c1": 1.0, "c2": 1.0})
    board.started("t1", "pretrain", "big")
    clock.now = 50
    board.reported("t1", {"progress": 0.5})
    assert board.eta() == 50 + 20
    clock.now = 100
    board.finished("t1", True)
    board.started("t2", "pretrain", "c1")
    assert board.eta() == 10 + 10  # c1 not reported yet: both cheap trunks at 10 s per unit


def test_a_failed_trunk_counts_its_evaluations_as_without_a_trunk():
    clock = Clock()
    board = Board({"pretrain": 1, "probe": 1}, total_cells=5, clock=clock)
    board.started("a", "pretrain")
    board.finished("a", False)
    assert board.line().startswith("cells 0/5 done | jobs: 0 done, 0 running, 1 failed")
    board.orphaned("probe", 1)
    assert "0 pending, 1 without a trunk" in board.line()


def test_reporting_passes_everything_on_and_reports_at_most_every_interval():
    """The worker's figures reach the driver's callback, throttled; the recorder underneath
    still gets every value (they are MLflow metrics too)."""
    clock, sent, inner = Clock(), [], MemoryRecorder()
    recorder = Reporting(inner, sent.append, every=2.0, clock=clock)
    for step in range(1, 11):
        clock.now = step * 0.5
        recorder.metrics(
            {"pretext_loss": 1.0, "progress": step / 10, "epoch": 0, "samples_per_s": 9.0}, step
        )
    recorder.metrics({"top1": 50.0}, 11)  # no progress in it: not a report
    assert len(inner.series("progress")) == 10
    assert [r["step"] for r in sent] == [1, 5, 9]  # at 0.5 s, 2.5 s, 4.5 s
    assert set(sent[0]) == {"progress", "step", "epoch", "samples_per_s"}
