"""Content keys: the hash of the canonical JSON of everything that can change a result.

Stable across processes and machines (no Python `hash`, no dict order, no paths), so MLflow
can be asked, from anywhere, whether a result exists.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Bump when a code change changes results: every key changes, so everything reruns.
RESULTS_VERSION = 1


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, ASCII: one text per value."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def content_key(kind: str, material: dict[str, Any]) -> str:
    """16 hex digits (64 bits) of sha256 over the kind, the results version and the material."""
    text = canonical_json({"kind": kind, "results_version": RESULTS_VERSION, **material})
    return hashlib.sha256(text.encode()).hexdigest()[:16]
