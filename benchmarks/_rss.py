"""Peak memory of the running benchmark process."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's high-water RSS in MiB: VmHWM. (ru_maxrss would include the parent's RSS, which
    Linux carries over exec when the child was spawned with vfork.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _vmhwm_mb(pid: int | str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int | str) -> list[str]:
    out: list[str] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += (task / "children").read_text().split()
    except OSError:
        pass
    return out


def tree_peaks_mb() -> list[float]:
    """The peak RSS of this process and of every live descendant (worker pools). Their sum bounds
    the tree's peak from above (the processes need not peak at the same moment). Call it before
    the workers exit."""
    peaks, todo = [peak_rss_mb()], _children("self")
    while todo:
        pid = todo.pop()
        peaks.append(_vmhwm_mb(pid))
        todo += _children(pid)
    return peaks
