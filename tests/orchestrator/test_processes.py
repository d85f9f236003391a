"""orchestrator.processes on this machine's real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from orchestrator import processes


def test_a_zombie_is_dead_and_a_sleeper_alive_with_its_children_found():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    quitter = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while processes.alive(quitter.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # not waited for: it stays a zombie, which must count as dead
        assert not processes.alive(quitter.pid)
        assert processes.alive(sleeper.pid)
        assert {sleeper.pid, quitter.pid} <= set(processes.descendants(os.getpid()))
    finally:
        sleeper.kill()
        sleeper.wait()
        quitter.wait()
    assert not processes.alive(sleeper.pid) and not processes.alive(0)
