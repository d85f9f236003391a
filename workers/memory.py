"""The peak memory of a job: host RSS of this process and, on a GPU, the memory torch
allocated, measured from `reset` to `peaks`. Recorded at the end of every job (what a machine
for the full sweep needs; `monosweep smoke` shows it per job shape). And how glibc's malloc
keeps freed memory: for speed within a job (`keep_freed_memory`), handed back between jobs."""

from __future__ import annotations

import ctypes
import ctypes.util
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
    if (libc := _glibc()) is not None:
        libc.malloc_trim(0)
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


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(threshold: int = 32 * 2**20) -> None:
    """Let this process' malloc reuse freed blocks of up to `threshold` bytes instead of
    returning them to the kernel. A CPU batch allocates tens of 0.3-2 MB temporaries per
    chunk; glibc maps each from the kernel and unmaps it when freed (blocks above 128 KB,
    until its adaptive threshold catches up, which torch's allocation pattern defeats), so
    every call paid ~7,000 page faults: a third of its time at 64 px. Process-wide, on glibc
    only (elsewhere nothing changes); the cost is up to `threshold` more resident memory, which
    `reset` hands back between jobs."""
    if (libc := _glibc()) is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, threshold)
        libc.mallopt(_M_TRIM_THRESHOLD, 4 * threshold)


def _glibc() -> ctypes.CDLL | None:
    """This process's C library where it is glibc (it has malloc_trim and mallopt), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
    except (OSError, TypeError):
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
