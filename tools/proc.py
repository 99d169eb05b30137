"""Process helpers shared by the dev tools: free ports, process groups, signals.

Every long-lived child (PostgreSQL, Odoo, the watchdog) is started in its own
session, so that a Ctrl-C in the terminal reaches only our Python process, which
then stops the children in a known order instead of letting them race.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something already listens on ``host:port`` (or binding it fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def stop_group(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 30.0) -> int | None:
    """Send ``sig`` to the process group led by ``proc``, wait, then SIGKILL it.

    ``proc`` must have been started with ``start_new_session=True``. Returns the
    exit code, or None when the process had to be killed.
    """
    if proc.poll() is None:
        _kill_group(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    killed = proc.poll() is None
    _kill_group(proc.pid, signal.SIGKILL)  # the leader if still there, or its leftovers
    proc.wait()
    return None if killed else proc.returncode


def _kill_group(pgid: int, sig) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread on SIGINT, SIGTERM or SIGHUP."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def raise_interrupted(signum, _frame):
    """Signal handler: raise :class:`Interrupted` (see :func:`signals_raise`)."""
    # Only the first signal interrupts: the clean-up that follows is bounded by
    # timeouts and must not be cut short by a second Ctrl-C (orphans).
    for sig in _HANDLED:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_raise():
    """Turn the first SIGINT/SIGTERM/SIGHUP into :class:`Interrupted` inside the
    block; later ones are ignored until the block ends."""
    old = {sig: signal.signal(sig, raise_interrupted) for sig in _HANDLED}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_ignored():
    """Ignore SIGINT/SIGTERM/SIGHUP inside the block (used while cleaning up,
    which is bounded by timeouts, so a second Ctrl-C cannot leave orphans)."""
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _HANDLED}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
