"""What ``make run`` runs: Odoo 18 with auto_heal, kept alive by the real watchdog.

With an Odoo 18 (``ODOO_BIN``, or ``odoo`` on PATH reporting 18.0):

1. a persistent private PostgreSQL cluster in ``.run/pg``;
2. ``.run/odoo.conf`` (0600), whose ``logfile`` is ``.run/odoo.log``: the install
   (``-i auto_heal``, or ``-u`` when the module's files changed) runs with it, so
   auto_heal makes its log source for that file and scans it;
3. an ``odoo shell`` step that makes the watchdog's user, an Auto-Heal Manager
   with a fresh API key in ``.run/watchdog/api-key`` (0600), and the log source
   of an older database;
4. Odoo started by the command the watchdog restarts it with (``tools/spawn.py``,
   ``--pidfile .run/odoo.pid``), until ``/web/health`` answers 200;
5. the watchdog, ``bin/auto-heal monitor`` with a generated
   ``.run/watchdog/auto-heal.toml``: it probes Odoo and PostgreSQL, restarts Odoo
   through ``[odoo.restart] via = "command"`` when it dies (``kill -9`` it), scans
   the log, and hands what it did over to Odoo, where it shows as an incident.

Ctrl-C (or SIGTERM) stops the watchdog, then Odoo, then PostgreSQL. Without
Odoo: ``bin/auto-heal detect`` on a bundled real Odoo 18 log, and how to get Odoo.

Usage: ``python -m tools.run [--port 8069]``
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

if not __package__:  # run as a script: python tools/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.odoo_env import (  # noqa: E402
    HOW_TO_GET_ODOO,
    MODULE,
    REPO_ROOT,
    Condenser,
    OdooError,
    addons_dir_with_auto_heal,
    find_odoo,
    module_state,
    odoo_addons_path,
    run_streaming,
)
from tools.pgcluster import PgCluster, PgError  # noqa: E402
from tools.proc import (  # noqa: E402
    Interrupted,
    port_in_use,
    signals_ignored,
    signals_raise,
    stop_group,
)

RUN = REPO_ROOT / ".run"
WATCHDOG = RUN / "watchdog"
DB = MODULE
CLI = REPO_ROOT / "bin" / "auto-heal"
SPAWN = REPO_ROOT / "tools" / "spawn.py"
SAMPLE = Path("tests/samples/real/odoo18-numbercall-startup-failure.log")
HEALTH_TIMEOUT = 180
WATCHDOG_LOGIN = "auto_heal_watchdog"
#: The watchdog's log; make run shows what it appends on the console.
WATCHDOG_LOG = WATCHDOG / "watchdog.log"
#: What the ``odoo shell`` step runs: the watchdog's user and key, the log source.
SETUP_SCRIPT = """
import json
import odoo
Users = env["res.users"].with_context(active_test=False)
user = Users.search([("login", "=", %(login)r)])
groups = [env.ref("base.group_user").id, env.ref("auto_heal.group_auto_heal_manager").id]
if not user:
    user = Users.create({"name": "Auto-Heal Watchdog (make run)", "login": %(login)r,
                         "groups_id": [(6, 0, groups)]})
user.write({"active": True, "groups_id": [(4, group) for group in groups]})
keys = env["res.users.apikeys"].sudo()
keys.search([("user_id", "=", user.id)])._remove()  # one key: this make run's
key = keys.with_user(user).sudo()._generate(None, "make run watchdog", None)
sources = env["auto_heal.log.source"].with_context(active_test=False)
logfile = odoo.tools.config["logfile"]
if logfile and not sources.search_count([("path", "=", logfile)]):
    sources._create_default_log_source()
env.cr.commit()
print("AH_SETUP " + json.dumps({"key": key, "log_sources": sources.search([]).mapped("path")}))
"""


def say(text: str = "") -> None:
    print(text, flush=True)


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def cli_missing() -> bool:
    if CLI.is_file():
        return False
    say(f"bin/auto-heal is not there yet ({rel(CLI)}): the watchdog part is skipped.")
    return True


# --- without Odoo ------------------------------------------------------------------

def run_without_odoo(reasons) -> int:
    say("!!! ODOO 18 NOT FOUND: make run cannot start Odoo !!!")
    for reason in reasons:
        say(f"    {reason}")
    rc = 0
    if not cli_missing():
        cmd = [sys.executable, rel(CLI), "detect", "--log", str(SAMPLE)]
        say(f"\nMeanwhile, the watchdog on a real Odoo 18 log from this repository:\n"
            f"$ {' '.join(cmd)}")
        rc = subprocess.run(cmd, cwd=REPO_ROOT).returncode
        if rc not in (0, 1):
            say(f"bin/auto-heal detect exited with code {rc}")
    say("\n" + HOW_TO_GET_ODOO + "\nthen run `make run` again.")
    return 0 if rc in (0, 1) else rc


# --- with Odoo ---------------------------------------------------------------------

def write_private(path: Path, text: str) -> Path:
    """*text* into *path*, mode 0600 (it holds a password or a key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)
    return path


def write_odoo_conf(pg: PgCluster, addons_path: str, port: int) -> Path:
    """``.run/odoo.conf``: every Odoo of make run (install, server, shell) logs to .run/odoo.log."""
    return write_private(RUN / "odoo.conf", "\n".join([
        "[options]",
        f"addons_path = {addons_path}",
        f"data_dir = {RUN / 'data'}",
        f"db_host = {pg.host}",
        f"db_port = {pg.port}",
        f"db_user = {pg.user}",
        f"db_password = {pg.password}",
        f"db_name = {DB}",
        f"dbfilter = ^{DB}$",
        "list_db = False",
        "http_interface = 127.0.0.1",
        f"http_port = {port}",
        f"logfile = {RUN / 'odoo.log'}",
        "",
    ]))


def module_digest() -> str:
    """A digest of the module's files (names, sizes, mtimes) to spot changes."""
    digest = hashlib.sha256()
    skip = {".git", ".venv", ".run", ".tmp", "__pycache__", ".pytest_cache", ".ruff_cache"}
    for folder, dirs, files in os.walk(REPO_ROOT):
        dirs[:] = sorted(d for d in dirs if d not in skip)
        for name in sorted(files):
            path = Path(folder, name)
            with contextlib.suppress(OSError):
                stat = path.stat()
                digest.update(f"{rel(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class LogFollower(threading.Thread):
    """Feed the lines appended to a log file to *feed*, until stopped (then drain)."""

    def __init__(self, path: Path, feed):
        super().__init__(daemon=True)
        self.path, self.feed = path, feed
        self.offset = path.stat().st_size if path.exists() else 0
        self.done = threading.Event()

    def run(self):
        pending = ""
        while True:
            stopping = self.done.is_set()
            with contextlib.suppress(OSError):
                with open(self.path, encoding="utf-8", errors="replace") as fh:
                    fh.seek(self.offset)
                    chunk = fh.read()
                    self.offset = fh.tell()
                pending += chunk
                *lines, pending = pending.split("\n")
                for line in lines:
                    self.feed(line)
            if stopping:
                if pending:
                    self.feed(pending)
                return
            time.sleep(0.2)

    def stop(self):
        self.done.set()
        self.join(10)


def install_or_update(odoo_bin: str, conf: Path, pg: PgCluster) -> bool:
    """Install or upgrade the module when needed; True when it did."""
    state = module_state(pg, DB)
    digest_file = RUN / "module.digest"
    digest = module_digest()
    if state != "installed":
        action, what = ["-i", MODULE, "--without-demo=all"], "install"
    elif not digest_file.exists() or digest_file.read_text() != digest:
        action, what = ["-u", MODULE], "upgrade"
    else:
        say(f"Database {DB}: {MODULE} installed and unchanged.")
        return False
    log = RUN / "odoo-install.log"
    cmd = [odoo_bin, "-c", str(conf), "-d", DB, *action, "--stop-after-init",
           "--logfile", str(RUN / "odoo.log")]
    say(f"Database {DB}: {what} {MODULE}" + (" (its files changed)" if what == "upgrade" else "")
        + f", log: {rel(RUN / 'odoo.log')}\n$ {' '.join(cmd)}")
    condenser = Condenser()
    follower = LogFollower(RUN / "odoo.log", condenser.feed)
    follower.start()
    try:
        rc = run_streaming(cmd, log, [condenser.feed], cwd=RUN)
    finally:
        follower.stop()
    state = module_state(pg, DB)
    if rc or state != "installed":
        raise OdooError(f"{MODULE} failed to {what} (Odoo exit {rc}, module state "
                        f"{state or 'none'}): see {rel(RUN / 'odoo.log')}")
    digest_file.write_text(digest)
    return True


def setup_watchdog_user(odoo_bin: str, conf: Path) -> Path:
    """The watchdog's Auto-Heal Manager and a fresh API key (0600), via ``odoo shell``."""
    key_file = WATCHDOG / "api-key"
    cmd = [odoo_bin, "shell", "-c", str(conf), "-d", DB, "--no-http"]
    say(f"The watchdog's user {WATCHDOG_LOGIN} and its API key ({rel(key_file)})\n"
        f"$ {' '.join(cmd)} < setup script")
    try:
        res = subprocess.run(cmd, input=SETUP_SCRIPT % {"login": WATCHDOG_LOGIN},
                             capture_output=True, text=True, timeout=600, cwd=RUN)
    except (OSError, subprocess.SubprocessError) as exc:
        raise OdooError(f"odoo shell failed: {exc}") from None
    lines = [line for line in res.stdout.splitlines() if line.startswith("AH_SETUP ")]
    if not lines:
        tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
        raise OdooError("odoo shell did not make the watchdog's user: "
                        + (" | ".join(tail) or f"exit {res.returncode}")
                        + f"; see {rel(RUN / 'odoo.log')}")
    setup = json.loads(lines[-1][len("AH_SETUP "):])
    write_private(key_file, setup["key"] + "\n")
    say(f"  log sources scanned by Odoo: {', '.join(setup['log_sources']) or 'none'}")
    return key_file


def odoo_command(odoo_bin: str, conf: Path) -> list:
    """How Odoo is started: first by make run, then by the watchdog after it died."""
    return [sys.executable, str(SPAWN), "--output", str(RUN / "odoo.stderr.log"), "--",
            odoo_bin, "-c", str(conf), "-d", DB, "--pidfile", str(RUN / "odoo.pid")]


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(str(value))  # a TOML basic string is a JSON string


def write_watchdog_config(port: int, pg: PgCluster, command: list, key_file: Path) -> Path:
    """``.run/watchdog/auto-heal.toml`` (every key: examples/auto-heal.toml)."""
    sections = {
        "watchdog": {"state_dir": WATCHDOG / "state", "log_file": WATCHDOG_LOG, "interval": 2.0,
                     "host": socket.gethostname()},
        "odoo": {"url": f"http://127.0.0.1:{port}", "pidfile": RUN / "odoo.pid",
                 "logs": [RUN / "odoo.log"]},
        "odoo.restart": {"via": "command", "command": command, "timeout": 180.0,
                         "stop_timeout": 10.0},
        # no [postgresql.restart]: make run's own cluster is make run's to stop
        "postgresql": {"dsn": f"host={pg.host} port={pg.port} user={pg.user} dbname={DB} "
                              "connect_timeout=5"},
        "probes.startup": {"period": 2.0, "timeout": 5.0, "failure_threshold": 90},
        "probes.liveness": {"period": 5.0, "timeout": 5.0, "failure_threshold": 3},
        "probes.readiness": {"period": 5.0, "timeout": 5.0, "failure_threshold": 3},
        "probes.postgresql": {"period": 5.0, "timeout": 5.0},
        "probes.process": {"period": 2.0},
        "probes.disk": {"paths": [RUN]},
        "restart": {"first_delay": 2.0, "max_restarts": 5, "window": 600.0},
        "scan": {"settle": 2.0},
        # the addon scans .run/odoo.log itself: the watchdog hands log incidents over
        # only while Odoo is down, and always its restarts
        "handover": {"url": f"http://127.0.0.1:{port}", "db": DB, "login": WATCHDOG_LOGIN,
                     "api_key_file": key_file, "incidents": "when_down", "retry": 5.0},
    }
    lines = ["# Written by `make run` (tools/run.py) at each start; every key: "
             "examples/auto-heal.toml"]
    for name, values in sections.items():
        lines.append(f"\n[{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    return write_private(WATCHDOG / "auto-heal.toml", "\n".join(lines) + "\n")


def odoo_pid(conf: Path) -> int | None:
    """The pid in .run/odoo.pid when that process is an Odoo of this make run."""
    try:
        pid = int((RUN / "odoo.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if str(conf).encode() in cmdline else None


def wait_healthy(port: int, conf: Path) -> None:
    url = f"http://127.0.0.1:{port}/web/health"
    deadline = time.monotonic() + HEALTH_TIMEOUT
    started = time.monotonic()
    while time.monotonic() < deadline:
        if odoo_pid(conf) is None and time.monotonic() - started > 15:
            raise OdooError(f"Odoo is not running; see {rel(RUN / 'odoo.log')} and "
                            f"{rel(RUN / 'odoo.stderr.log')}")
        with contextlib.suppress(OSError, urllib.error.URLError):
            with urllib.request.urlopen(url, timeout=3) as resp:
                if resp.status == 200:
                    return
        time.sleep(0.5)
    raise OdooError(f"{url} did not answer 200 within {HEALTH_TIMEOUT}s; "
                    f"see {rel(RUN / 'odoo.log')}")


def stop_odoo(conf: Path, timeout: float = 30.0) -> None:
    """Stop the Odoo of this make run (whichever the watchdog started last)."""
    with signals_ignored():
        pid = odoo_pid(conf)
        if pid is None:
            return
        say(f"stopping Odoo (pid {pid}) ...")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.2)
        killed = Path(f"/proc/{pid}").exists()
        if killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        say("stopped Odoo" + (" (killed)" if killed else ""))


def stopper(name: str, proc: subprocess.Popen, timeout: float):
    def stop():
        with signals_ignored():
            running = proc.poll() is None
            if running:
                say(f"stopping {name} (pid {proc.pid}) ...")
            rc = stop_group(proc, timeout=timeout)
            if running:
                say(f"stopped {name}" + (" (killed)" if rc is None else ""))
    return stop


def shown_odoo(odoo_bin: str) -> str:
    return "odoo" if shutil.which("odoo") == odoo_bin else odoo_bin


def serve(odoo_bin: str, port: int, stack: contextlib.ExitStack) -> int:
    # The folder holding the auto_heal link lives outside the checkout: a link
    # back into the addon would make Odoo's file walks (i18n export) loop.
    link_home = Path(tempfile.gettempdir()) / (
        "auto_heal-run-" + hashlib.sha1(str(REPO_ROOT).encode()).hexdigest()[:10])
    addons_path = f"{odoo_addons_path(odoo_bin)},{addons_dir_with_auto_heal(link_home)}"
    stack.callback(say, f"stopped PostgreSQL (data kept in {rel(RUN / 'pg')})")
    pg = stack.enter_context(PgCluster(datadir=RUN / "pg", keep=True, handle_signals=False))
    say(f"PostgreSQL: private cluster on {pg.host}:{pg.port}, data in {rel(RUN / 'pg')}")
    conf = write_odoo_conf(pg, addons_path, port)
    changed = install_or_update(odoo_bin, conf, pg)
    key_file = WATCHDOG / "api-key"
    if changed or not key_file.exists():
        key_file = setup_watchdog_user(odoo_bin, conf)
    command = odoo_command(odoo_bin, conf)
    watchdog_conf = write_watchdog_config(port, pg, command, key_file)

    if odoo_pid(conf) is not None:
        raise OdooError(f"an Odoo of an earlier make run still runs (pid {odoo_pid(conf)}, "
                        f"{rel(RUN / 'odoo.pid')}): stop it first")
    say(f"Starting Odoo (the watchdog restarts it with the same command)\n$ {' '.join(command)}")
    stack.callback(stop_odoo, conf)
    subprocess.run(command, check=True, cwd=RUN, stdin=subprocess.DEVNULL)
    wait_healthy(port, conf)

    cmd = [sys.executable, rel(CLI), "monitor", "--config", rel(watchdog_conf)]
    say(f"Starting the watchdog (log: {rel(WATCHDOG_LOG)}, shown here as 'watchdog |')\n"
        f"$ {' '.join(cmd)}")
    env = dict(os.environ, PGPASSWORD=pg.password)  # the PostgreSQL probe's password
    follower = LogFollower(WATCHDOG_LOG, lambda line: say(f"  watchdog | {line}"))
    follower.start()
    stack.callback(follower.stop)
    watchdog = subprocess.Popen(cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    stack.callback(stopper("the watchdog", watchdog, timeout=20))
    odoo = shown_odoo(odoo_bin)
    say("")
    say(f"  Odoo 18 with {MODULE}: http://127.0.0.1:{port}/odoo/auto-heal   login: admin / admin")
    say(f"  Odoo's log: {rel(RUN / 'odoo.log')} (scanned by the log source 'Odoo server log'; "
        f"stderr: {rel(RUN / 'odoo.stderr.log')})")
    say(f"  a shell on the database: {odoo} shell -c {rel(conf)} -d {DB}")
    say(f"  the watchdog: bin/auto-heal status --config {rel(watchdog_conf)}")
    say(f"  try it: kill -9 $(cat {rel(RUN / 'odoo.pid')})   the watchdog restarts Odoo, and "
        "the restart shows in Auto-Heal > Incidents")
    say(f"  after many restarts it stops and escalates: bin/auto-heal reset --config "
        f"{rel(watchdog_conf)}")
    say("  Ctrl-C stops the watchdog, Odoo and PostgreSQL.")
    say("")
    while watchdog.poll() is None:
        time.sleep(1)
    say(f"the watchdog exited with code {watchdog.returncode}: nothing restarts Odoo now; "
        "stopping")
    return 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tools/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8069, help="Odoo's HTTP port (8069)")
    opts = parser.parse_args(argv)
    if not 0 < opts.port < 65536:
        parser.error(f"--port {opts.port}: not a TCP port")

    reasons = []
    odoo_bin = find_odoo(reasons)
    if not odoo_bin:
        return run_without_odoo(reasons)
    if port_in_use(opts.port):
        say(f"error: port {opts.port} is already in use; pick another, "
            f"e.g. make run PORT={opts.port + 1}")
        return 2
    RUN.mkdir(exist_ok=True)
    with signals_raise():
        try:
            with contextlib.ExitStack() as stack:
                return serve(odoo_bin, opts.port, stack)
        except (OdooError, PgError) as exc:
            say(f"error: {exc}")
            return 1
        except Interrupted as exc:
            say(f"{exc} received: everything make run started is stopped.")
            return 0
        except KeyboardInterrupt:
            say("interrupted: everything make run started is stopped.")
            return 0


if __name__ == "__main__":
    sys.exit(main())
