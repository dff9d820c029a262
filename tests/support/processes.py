"""Stopping a child process the way Kubernetes stops a pod: SIGTERM, then a deadline."""

import subprocess
from pathlib import Path


def _kernel_view(pid: int) -> str:
    """What the kernel says of a process: its state, its blocked, ignored and caught signals,
    and what it waits in."""
    proc = Path(f"/proc/{pid}")
    try:
        status = [
            line
            for line in (proc / "status").read_text().splitlines()
            if line.startswith(("State", "SigBlk", "SigIgn", "SigCgt", "Threads"))
        ]
        wchan = (proc / "wchan").read_text()
    except OSError as err:
        return f"/proc/{pid} unreadable: {err}"
    return "; ".join([*status, f"wchan: {wchan}"])


def terminate_and_wait(process: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM, then wait up to `timeout` s. A process still alive then is SIGKILLed and the
    test fails with the kernel's view of it (stopped, or SIGTERM blocked or ignored: SigIgn bit
    14)."""
    process.terminate()
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        seen = _kernel_view(process.pid)
        process.kill()
        process.wait(timeout=10)
        raise AssertionError(f"{process.args} outlived SIGTERM by {timeout} s: {seen}") from None
