"""Processes of this machine, as the driver sees them: whether one still lives, and which
run below it. Linux reads /proc; elsewhere (a macOS laptop) a process counts as alive while it
exists and none are found below the driver."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PROC = Path("/proc")


def alive(pid: int) -> bool:
    """Running or stopped: not gone, and not a zombie waiting to be reaped (a dead driver whose
    parent has not collected it yet)."""
    if pid <= 0:
        return False
    if not PROC.is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # someone else's: it exists
            return True
        return True
    try:
        state = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc's parent ids."""
    children: dict[int, list[int]] = {}
    for stat in PROC.glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
