"""Helpers shared by the pytest suites of engine/, host/ and tools/.

Real components only: a forked child that really drops its privileges, and
a real private PostgreSQL cluster.
"""

import os
import pwd

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
