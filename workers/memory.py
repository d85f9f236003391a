"""The peak memory of a job: host RSS of this process and, on a GPU, the memory torch
allocated, measured from `reset` to `peaks`. Recorded at the end of every job (what a machine
for the full sweep needs; `monosweep smoke` shows it per job shape)."""

from __future__ import annotations

import ctypes
import gc
import resource
from pathlib import Path

import torch

STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def reset() -> None:
    """Start a job's measurement. A Ray worker runs job after job: on Linux the process's
    high-water mark of RSS is set back to its current RSS (clear_refs 5), so a job is not
    charged with its predecessor's peak; elsewhere the peak is the process's since it began.
    First glibc hands back the heap the predecessor freed (malloc_trim), which it would keep
    resident: the next job would be charged with it, and hold it beside its own."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        pass
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peaks() -> dict[str, float]:
    """MiB: `peak_host_memory_mb` (VmHWM, else ru_maxrss), and `peak_device_memory_mb` on a GPU."""
    out = {"peak_host_memory_mb": _host_peak_kib() / 1024}
    if torch.cuda.is_available():
        out["peak_device_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _host_peak_kib() -> float:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])  # "VmHWM:   123456 kB"
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux (bytes on macOS)
