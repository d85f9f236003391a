"""Extensions from installed packages, found through Python entry points (as pytest finds its
plugins under `pytest11`): a package names its modules under our groups, and each module
registers itself on import (`@METHODS.add`, `register(Kind())`, its ops), so nothing in
monosweep is edited.

    [project.entry-points."monosweep.methods"]
    jigsaw_lite = "my_ssl.settings"        # torch-free: the driver validates files with it

`load` imports every entry point's module once per process. The CLI calls it before a file is
validated, and `orchestrator.jobs` before a worker runs a job, so that the driver and the
workers see the same tables. Stdlib only: a broken plugin must be named, not crash the import.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

# Methods (their settings, torch-free), evaluation kinds (their driver side), augmentation ops.
GROUPS = ("monosweep.methods", "monosweep.evaluations", "monosweep.ops")


class PluginError(Exception):
    """An entry point's module failed to import: the message names the distribution and its
    version, the group and entry point, and the exception."""


@dataclass(frozen=True)
class Plugin:
    """One loaded entry point, as `monosweep env` lists it."""

    group: str
    name: str
    module: str
    distribution: str
    version: str


_loaded: list[Plugin] | None = None


def load() -> list[Plugin]:
    """Import the module of every entry point in GROUPS (in group order, then by distribution
    and name); the second call returns the first's list.

    Raises:
        PluginError: a module raised on import (or named an object it does not have).
    """
    global _loaded
    if _loaded is None:
        found = entry_points()
        plugins = []
        for group in GROUPS:
            for point in sorted(found.select(group=group), key=_order):
                plugins.append(_import(point))
        _loaded = plugins
    return _loaded


def _order(point: EntryPoint) -> tuple[str, str]:
    return (point.dist.name if point.dist else "", point.name)


def _import(point: EntryPoint) -> Plugin:
    name, version = (point.dist.name, point.dist.version) if point.dist else ("(unknown distribution)", "?")
    try:
        point.load()
    except Exception as error:  # noqa: BLE001  (whatever a plugin's import raises is the plugin's fault)
        raise PluginError(
            f"plugin {name} {version}: entry point {point.name!r} = {point.value!r} in group {point.group!r} "
            f"failed to load: {type(error).__name__}: {error} (fix or uninstall {name})"
        ) from error
    return Plugin(point.group, point.name, point.value, name, version)
