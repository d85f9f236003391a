"""The content keys of every shipped sweep, pinned: a refactor that changes one key would
silently rerun (or orphan) every finished result of that kind. Regenerate the file only when
RESULTS_VERSION is bumped on purpose:

    .venv/bin/python tests/orchestrator/test_golden_keys.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden_keys.json")
FILES = sorted(str(p.relative_to(ROOT)) for p in [ROOT / "experiments.yaml", *(ROOT / "examples").glob("*.yaml")])


def keys_of(name: str) -> dict[str, dict[str, str]]:
    """label -> key of every cell, pretrain job and evaluation job of one sweep file."""
    from orchestrator.grid import expand
    from orchestrator.loading import load_spec

    path = ROOT / name
    sweep = expand(load_spec(path), path.parent)
    return {
        "cells": {c.label: c.key for c in sweep.cells},
        "pretrain": {j.label: k for k, j in sweep.pretrain_jobs.items()},
        "evaluation": {j.label: k for k, j in sweep.evaluation_jobs.items()},
    }


@pytest.mark.parametrize("name", FILES)
def test_keys_are_pinned(name: str) -> None:
    golden = json.loads(GOLDEN.read_text())
    assert name in golden, f"{name} has no pinned keys: regenerate {GOLDEN.name}"
    assert keys_of(name) == golden[name]


def test_every_shipped_file_is_pinned() -> None:
    assert sorted(json.loads(GOLDEN.read_text())) == FILES


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    GOLDEN.write_text(json.dumps({name: keys_of(name) for name in FILES}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
