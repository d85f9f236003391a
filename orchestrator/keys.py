"""Content keys: the hash of the canonical JSON of everything that can change a result.

Stable across processes and machines (no Python `hash`, no dict order, no paths), so MLflow
can be asked, from anywhere, whether a result exists.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from contract.base import KeyNeutral

# Bump when a code change changes results: every key changes, so everything reruns.
# 2: upstream schedules, heads and inits, the two-stage mono data, full-coverage probe pools.
# 3: training batches made whole on the device (batched stage 1 and stage 2 pixels).
# 4: a schedule milestone never falls on epoch 0 (contract/schedules.py `milestone`): short runs
#    (RotNet's one-epoch CPU runs) trained at a tenth of their rate from the first step.
RESULTS_VERSION = 4


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, ASCII: one text per value."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def content_key(kind: str, material: dict[str, Any]) -> str:
    """16 hex digits (64 bits) of sha256 over the kind, the results version and the material."""
    text = canonical_json({"kind": kind, "results_version": RESULTS_VERSION, **material})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def settings_material(model: BaseModel, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """A settings model as key material: its resolved values (a preset's name is only where
    they came from), without the fields marked `KeyNeutral` that hold their neutral value."""
    neutral = {
        name for name, field in type(model).model_fields.items()
        if any(isinstance(m, KeyNeutral) and m.value == getattr(model, name) for m in field.metadata)
    }
    return model.model_dump(mode="json", exclude={"preset", *exclude, *neutral})
