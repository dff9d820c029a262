"""How dead_run_sensor tells a dead run worker from a live one: by the process table only."""

import signal
import subprocess
import sys
import time

from sensors.run_health import process_is_alive


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_running_process_is_alive():
    process = _sleeper()
    try:
        assert process_is_alive(process.pid, started_by=time.time())
    finally:
        process.kill()
        process.wait()


def test_a_paused_process_is_alive():
    """A SIGSTOPped (or swapped-out, or checkpoint-writing) run worker is never failed."""
    process = _sleeper()
    try:
        process.send_signal(signal.SIGSTOP)
        time.sleep(0.2)
        assert process_is_alive(process.pid, started_by=time.time())
    finally:
        process.kill()
        process.wait()


def test_a_killed_process_is_dead_even_before_it_is_reaped():
    process = _sleeper()
    process.kill()
    time.sleep(0.3)  # a zombie now: exited, its parent (this test) has not waited for it
    assert not process_is_alive(process.pid, started_by=time.time())
    process.wait()
    assert not process_is_alive(process.pid, started_by=time.time())


def test_a_reused_pid_is_not_taken_for_the_run_worker():
    """The run logged its pid before this process existed: another process got the pid."""
    process = _sleeper()
    try:
        assert not process_is_alive(process.pid, started_by=time.time() - 3600)
    finally:
        process.kill()
        process.wait()
