"""What every benchmark shares: arguments, the machine, interleaved timing, table and JSON.

Timing: after warm-up, each repeat runs every case once, back to back, in alternating order,
so a baseline and its candidate see the same load on a shared machine; a ratio is the median
over repeats of the per-repeat ratio, next to the median times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def parser(name: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=description)
    p.add_argument(
        "--tiny", action="store_true", help="smallest sizes: proves the script runs (tests)"
    )
    p.add_argument(
        "--repeats", type=int, default=None, help="timed repeats per case (default per script)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: one core, as a data worker)",
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda where there is one)")
    p.add_argument("--out", type=Path, default=RESULTS / f"{name}.json", help="where the JSON goes")
    return p


def setup(args: argparse.Namespace) -> str:
    """Thread count and device; returns the device name."""
    import torch

    torch.set_num_threads(args.threads)
    if args.device:
        return args.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def machine(device: str = "cpu") -> dict[str, Any]:
    """CPU model (from /proc/cpuinfo), cores, load, versions, GPU: the context of a number."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def interleaved(
    cases: Mapping[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    device: str = "cpu",
    wall: bool = False,
) -> dict[str, list[float]]:
    """Seconds per call of each case, `repeats` times, cases alternating order every repeat.

    On the CPU with one torch thread the clock is the process's CPU time (time.process_time):
    on a machine shared with other tenants, wall time measures their load as much as our code;
    CPU time of a single-threaded case measures our code. On a GPU, with several threads, or
    with `wall` (work that waits on files and databases), the clock is wall time.
    `wall_times` keeps the wall clock of the last call in either case."""
    names = list(cases)
    threads = __import__("torch").get_num_threads()
    clock = (
        time.perf_counter if wall or threads > 1 or device.startswith("cuda") else time.process_time
    )
    for _ in range(warmup):
        for name in names:
            cases[name]()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    wall_times.clear()
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            sync(device)
            start, wall = clock(), time.perf_counter()
            cases[name]()
            sync(device)
            times[name].append(clock() - start)
            wall_times.setdefault(name, []).append(time.perf_counter() - wall)
    return times


wall_times: dict[str, list[float]] = {}


def ratio(baseline: list[float], candidate: list[float]) -> float:
    """Median over repeats of baseline / candidate time (how many times faster)."""
    return statistics.median(b / c for b, c in zip(baseline, candidate, strict=True))


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-markdown table, numbers formatted."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    lines = [f"### {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def report(
    name: str, args: argparse.Namespace, device: str, text: str, results: dict[str, Any]
) -> None:
    """Print the table; write the JSON (machine, settings, results) to args.out."""
    print(text)
    print(f"\nmachine: {json.dumps(machine(device))}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    payload = {"bench": name, "machine": machine(device), "settings": settings, "results": results}
    args.out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


def skipped(name: str, args: argparse.Namespace, device: str, why: str) -> None:
    """A bench that cannot run here: say why, and write that down too."""
    print(f"{name}: skipped: {why}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"bench": name, "machine": machine(device), "skipped": why}, indent=2) + "\n"
    )
