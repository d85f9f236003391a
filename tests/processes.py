"""Processes started by tests, each in a session of its own, so that stopping it stops
everything it spawned (`ray start` leaves a GCS, raylets, agents and workers behind; `mlflow
server` its uvicorn workers) and nothing else on the machine: started, waited for, stopped in
order, SIGKILLed as a lost machine would be, and checked gone (from /proc).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def base_env() -> dict[str, str]:
    """This environment without Ray's and MLflow's settings, usage stats off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_"))}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def kill_session(pid: int) -> None:
    """SIGKILL the session led by `pid`, whatever is left of it."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop_session(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process's session, SIGKILL it if it is not gone within `timeout`; a
    session whose leader has already exited loses whatever it left behind."""
    if process.poll() is not None:
        kill_session(process.pid)
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_session(process.pid)
        process.wait()


@dataclass
class Group:
    name: str
    pgid: int
    stop: signal.Signals  # what asks the group's leader to shut down
    ray: bool  # a Ray node: stopped in the order of `ray stop`


def ANY(name: str) -> bool:
    return True


# `ray stop`'s order: the raylets, then everything else, the GCS last (a GCS or a raylet told
# to stop before the processes that depend on it waits for them).
RAY_STOP_ORDER: list[Callable[[str], bool]] = [
    lambda name: name == "raylet", lambda name: name != "gcs_server", ANY,
]


@dataclass
class Processes:
    logs: Path
    groups: list[Group] = field(default_factory=list)

    def start(
        self, name: str, argv: list[str], env: dict[str, str],
        stop: signal.Signals = signal.SIGTERM, ray: bool = False, **kwargs,
    ) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, **kwargs,
            )
        self.groups.append(Group(name, proc.pid, stop, ray))
        return proc

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else "(no log)"

    def kill(self, name: str, timeout: float = 15) -> list[tuple[int, str]]:
        """SIGKILL group `name` and every descendant of it, wherever it went, at once, as when
        its machine is lost: nothing gets to clean up or report. Returns the (pid, command
        name) it killed, once all of them are gone."""
        group = next(g for g in self.groups if g.name == name)
        tree = _tree(group.pgid)
        for pid, _ in tree:
            _signal(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while {pid for pid, *_ in _table()} & {pid for pid, _ in tree}:
            assert time.monotonic() < deadline, f"{name}: still alive after SIGKILL"
            time.sleep(0.1)
        return tree

    def stop_all(self) -> list[str]:
        """Stop the groups, newest first; returns the names of those that needed SIGKILL."""
        killed = []
        for group in reversed(self.groups):
            for chosen in RAY_STOP_ORDER if group.ray else [ANY]:
                _stop(group.pgid, group.stop, chosen)
            if members(group.pgid):
                killed.append(group.name)
                _stop(group.pgid, signal.SIGKILL, ANY)
        self.groups.clear()
        return killed


def _stop(pgid: int, sig: signal.Signals, chosen, timeout: float = 15) -> None:
    """Signal the group's chosen processes (by command name) and wait until they are gone."""
    for pid, name in members(pgid):
        if chosen(name):
            _signal(pid, sig)
    deadline = time.monotonic() + timeout
    while any(chosen(name) for _, name in members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.1)


def members(pgid: int) -> list[tuple[int, str]]:
    """(pid, command name) of the group's live processes."""
    return [(pid, name) for pid, _, group, name in _table() if group == pgid]


def _tree(pgid: int) -> list[tuple[int, str]]:
    """The group's live processes and all their descendants, in whatever group they are."""
    table = _table()
    pids = {pid for pid, _, group, _ in table if group == pgid}
    while children := {pid for pid, ppid, _, _ in table if ppid in pids} - pids:
        pids |= children
    return [(pid, name) for pid, _, _, name in table if pid in pids]


def _table() -> list[tuple[int, int, int, str]]:
    """(pid, parent pid, process group, command name) of the live processes (zombies, left to
    init, do not count)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        rest = text[text.rindex(")") + 2 :].split()
        if rest[0] != "Z":  # rest: state, ppid, pgrp, ...
            found.append((int(stat.parent.name), int(rest[1]), int(rest[2]), name))
    return found


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_for(what: str, check, timeout: float, processes: Processes, log: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    pytest.fail(f"{what} not up after {timeout:.0f}s; its log ends:\n{processes.log(log)}")
