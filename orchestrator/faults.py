"""Fault injection, for tests and drills: make chosen or random jobs fail, hang, or die.

Off unless the spec's `faults` or the MONOSWEEP_FAULTS environment variable (the same list,
as YAML or JSON; it wins) names some. A fault never enters a key: it changes whether a job
finishes, not what it computes.

    faults:
      - {match: "rotnet*", action: kill, at_step: 40}     # the worker process dies at step 40
      - {stage: evaluation, action: fail, rate: 0.5, seed: 1}  # half the evaluation jobs raise
      - {match: "rotnet*", action: hang, at_step: 8, during: checkpoint}  # hangs writing resume.pt
      - {stage: plan, action: hang}                       # the driver hangs before Ray starts
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, TypeAdapter, field_validator

from contract.base import Frozen
from contract.recorder import Recorder

ENV = "MONOSWEEP_FAULTS"


class InjectedFault(RuntimeError):
    """Raised by a `fail` fault."""

    reason = "injected"


class Fault(Frozen):
    action: Literal["fail", "hang", "kill"]
    match: str = Field("*", description="glob on the job's label, e.g. 'rotnet*full*'")
    stage: Literal["pretrain", "evaluation", "plan", "any"] = Field(
        "any", description="plan: the driver itself, planned but before Ray starts (a drill for signals)"
    )

    @field_validator("stage", mode="before")
    @classmethod
    def _probe_is_evaluation(cls, stage: Any) -> Any:
        if stage == "probe":
            warnings.warn("faults: stage `probe` is deprecated: call it `evaluation`", FutureWarning, stacklevel=2)
            return "evaluation"
        return stage
    at_step: int | None = Field(None, ge=0, description="step at which it strikes; None: at the start")
    during: Literal["step", "checkpoint"] = Field(
        "step", description="checkpoint: when the job hands its first resume.pt at or after at_step to the record"
    )
    rate: float = Field(1.0, ge=0, le=1, description="share of the matching jobs hit, drawn per job")
    seed: int = 0
    attempts: list[int] = Field([1], description="attempts hit; the default lets a retry succeed")

    def hits(self, stage: str, label: str, key: str, attempt: int) -> bool:
        if self.stage not in (stage, "any") or attempt not in self.attempts:
            return False
        if not fnmatch.fnmatchcase(label, self.match):
            return False
        draw = int(hashlib.sha256(f"{self.seed}:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        return draw < self.rate

    def strike(self) -> None:
        if self.action == "fail":
            raise InjectedFault(f"injected fault ({self.match}, step {self.at_step})")
        if self.action == "kill":
            os._exit(137)  # the process dies as if the OOM killer took it: no cleanup runs
        # A drill says where it holds the process (a test waits for this line to signal it there).
        print(f"fault injected: hang ({self.stage}, {self.match})", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)


def active(spec_faults: list[Fault]) -> list[Fault]:
    """The faults in force: MONOSWEEP_FAULTS when set, else the spec's."""
    text = os.environ.get(ENV)
    if not text:
        return spec_faults
    return TypeAdapter(list[Fault]).validate_python(yaml.safe_load(text) or [])


class FaultyRecorder:
    """Passes everything through, striking `fault` when a metric step reaches `at_step`
    (the compute core reports steps through its recorder, so it needs no fault code)."""

    def __init__(self, inner: Recorder, fault: Fault):
        self.inner, self.fault, self.step = inner, fault, 0

    def params(self, values: Mapping[str, Any], part: str | None = None) -> None:
        self.inner.params(values, part)

    def metrics(self, values: Mapping[str, float], step: int, part: str | None = None) -> None:
        self.inner.metrics(values, step, part)
        self.step = step
        if self.fault.during == "step" and self.fault.at_step is not None and step >= self.fault.at_step:
            self.fault.strike()

    def artifact(self, path: Path, part: str | None = None) -> None:
        due = self.fault.at_step is None or self.step >= self.fault.at_step
        if self.fault.during == "checkpoint" and path.name == "resume.pt" and due:
            self.fault.strike()  # saved on disk, not yet in the record: the job is mid-write
        self.inner.artifact(path, part)


def arm(faults: list[Fault], stage: str, label: str, key: str, attempt: int, recorder: Recorder) -> Recorder:
    """Strike now the faults due at the start; wrap the recorder for those due at a step."""
    for fault in faults:
        if fault.hits(stage, label, key, attempt):
            if fault.at_step is None and fault.during == "step":
                fault.strike()
            recorder = FaultyRecorder(recorder, fault)
    return recorder


def strike_driver(faults: list[Fault], name: str) -> None:
    """Strike the faults aimed at the driver of sweep `name` between its plan and Ray (stage `plan`)."""
    for fault in faults:
        if fault.stage == "plan" and fault.hits("plan", name, name, 1):
            fault.strike()
