"""Fixtures shared by the host tests, and the runner of ``bin/auto-heal``.

- :func:`run_auto_heal`: the command line in a child process, as a person runs it;
- ``home``: an ``AUTO_HEAL_HOME`` folder (backups, runs, the audit log);
- ``fake``: the fake Odoo of tools/fake_odoo.py, not started yet;
- ``monitors``: ``bin/auto-heal monitor`` processes, stopped after the test;
- ``dbname``: a fresh database name, dropped afterwards.
"""

import os
import secrets
import subprocess
import sys

import pytest

from host.tests.real_odoo import drop_database
from host.tests.watchdog_helpers import BIN, FakeOdoo, MonitorProcess


def run_auto_heal(args, home=None, *, env=None, timeout=300, text=True, **kwargs):
    """``bin/auto-heal ARGS``: its CompletedProcess (text, unless not *text*). *home* becomes
    ``AUTO_HEAL_HOME``; *env* replaces os.environ; ``AUTO_HEAL_DEBUG`` is dropped, so
    an error is the one line a person sees."""
    env = dict(os.environ if env is None else env)
    env.pop("AUTO_HEAL_DEBUG", None)
    if home is not None:
        env["AUTO_HEAL_HOME"] = str(home)
    return subprocess.run([sys.executable, BIN, *map(str, args)], capture_output=True,
                          text=text, env=env, timeout=timeout, **kwargs)


@pytest.fixture
def home(tmp_path):
    """AUTO_HEAL_HOME for the CLI: backups and the audit log land here."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def fake(tmp_path):
    server = FakeOdoo(tmp_path / "odoo")
    yield server
    server.cleanup()


@pytest.fixture
def monitors():
    started = []

    def start(config_path, state_dir, *args, env=None):
        monitor = MonitorProcess(config_path, state_dir, args, env=env)
        started.append(monitor)
        return monitor

    yield start
    for monitor in started:
        monitor.stop()


@pytest.fixture
def dbname(request):
    """A fresh database name for the test, dropped afterwards."""
    name = "auto_heal_%s_%s" % (request.node.name[:20].lower().strip("_"),
                                secrets.token_hex(4))
    yield name
    drop_database(name)
