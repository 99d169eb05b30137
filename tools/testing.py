"""Helpers shared by the pytest suites of engine/, host/ and tools/.

Real components only: a forked child that really drops its privileges, and
a real private PostgreSQL cluster.
"""

import os
import pwd
import time

import pytest


def run_as(user, function):
    """Run *function* in a forked child as *user*; return the text it returns.

    Root reads and writes anything, so tests of permission errors drop to an
    unprivileged user in a child (``/root``'s Python cannot be exec'd by
    other users, forking keeps the interpreter). Not root: the child keeps
    the current user.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                entry = pwd.getpwnam(user)
                os.setgroups([])
                os.setgid(entry.pw_gid)
                os.setuid(entry.pw_uid)
            os.write(write_end, function().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as handle:
        text = handle.read()
    os.waitpid(pid, 0)
    return text


class Unprivileged:
    """A forked child running ``function(ready)`` as *user* while the test goes on.

    The attack tests' adversary: a real process without root's power, racing
    root's. It calls ``ready()`` once it watches what it attacks; the text it
    returns is its report (:meth:`finish`).
    """

    def __init__(self, user, function):
        ready_r, ready_w = os.pipe()
        out_r, out_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - runs in the child
            code = 0
            try:
                os.close(ready_r)
                os.close(out_r)
                if os.geteuid() == 0:
                    entry = pwd.getpwnam(user)
                    os.setgroups([])
                    os.setgid(entry.pw_gid)
                    os.setuid(entry.pw_uid)

                def ready():
                    os.write(ready_w, b"1")

                text = function(ready)
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                text, code = f"attacker error: {type(exc).__name__}: {exc}", 1
            finally:
                try:
                    os.write(out_w, str(text).encode())
                finally:
                    os._exit(code)
        os.close(ready_w)
        os.close(out_w)
        self._ready, self._out = ready_r, out_r

    def wait_ready(self, timeout=10.0):
        import select

        if not select.select([self._ready], [], [], timeout)[0] or not os.read(self._ready, 1):
            raise AssertionError(f"the unprivileged process was not ready: {self.finish()}")

    def finish(self, timeout=30.0):
        """Its report; kills it after *timeout* seconds."""
        import select
        import signal

        chunks = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._out], [], [], left)[0]:
                os.kill(self.pid, signal.SIGKILL)
                chunks.append(b" (killed: still running)")
                break
            chunk = os.read(self._out, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.waitpid(self.pid, 0)
        os.close(self._ready)
        os.close(self._out)
        return b"".join(chunks).decode(errors="replace")


def swap_for_symlink_after_opens(path, target, opens, timeout=25.0):
    """An attack for :class:`Unprivileged`: watch *path* with inotify and, right
    after its *opens*-th open, swap it for a symlink to *target*."""
    # imported here, as root: the forked child as nobody cannot read root's Python
    from inotify_simple import INotify, flags

    def attack(ready):
        watcher = INotify()
        # closes between the opens keep the kernel from folding two opens into one event
        watcher.add_watch(path, flags.OPEN | flags.CLOSE_NOWRITE | flags.CLOSE_WRITE)
        ready()
        seen, deadline = 0, time.monotonic() + timeout
        while seen < opens:
            left = deadline - time.monotonic()
            events = watcher.read(timeout=max(1, int(left * 1000))) if left > 0 else []
            if not events:
                return f"no swap: saw {seen} open(s)"
            seen += sum(1 for event in events if event.mask & flags.OPEN)
        link = os.path.join(os.path.dirname(path), ".swap-%d" % os.getpid())
        os.symlink(target, link)
        os.rename(link, path)
        return f"swapped after open {seen}"
    return attack


def count_opens(path, function):
    """How many times *function* opens *path* (inotify, same process tree)."""
    from inotify_simple import INotify, flags

    watcher = INotify()
    watcher.add_watch(path, flags.OPEN | flags.CLOSE_NOWRITE | flags.CLOSE_WRITE)
    try:
        function()
        total = 0
        while True:
            events = watcher.read(timeout=200)
            if not events:
                return total
            total += sum(1 for event in events if event.mask & flags.OPEN)
    finally:
        watcher.close()


def start_private_cluster(settings=None):
    """A started :class:`tools.pgcluster.PgCluster`, or skip the test clearly.

    *settings*: more server settings (``max_prepared_transactions``,
    ``wal_level``...), for states the shared cluster cannot have.
    """
    try:
        from tools.pgcluster import PgCluster, PgError, find_bindir

        find_bindir()
    except Exception as exc:  # noqa: BLE001 - no server binaries here
        pytest.skip(f"no PostgreSQL server binaries: {exc}")
    cluster = PgCluster(handle_signals=False, settings=settings)
    try:
        cluster.start()
    except PgError as exc:
        pytest.skip(f"cannot start a private PostgreSQL: {exc}")
    return cluster
