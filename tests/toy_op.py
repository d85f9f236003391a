"""The toy package's augmentation op (tests/plugin/monosweep_toys) in this process: its folder on
sys.path and its settings module imported, as the package's entry point would be once installed
(which registers `toy_invert` in contract.augmentation.AUGMENTATION_OPS)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

PLUGIN = Path(__file__).with_name("plugin")


def import_toy_op() -> ModuleType:
    if str(PLUGIN) not in sys.path:
        sys.path.insert(0, str(PLUGIN))
    return importlib.import_module("monosweep_toys.toy_op")
