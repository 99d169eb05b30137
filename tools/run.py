"""What ``make run`` runs: Odoo 18 with auto_heal, plus the watchdog on its log.

With an Odoo 18 (``ODOO_BIN``, or ``odoo`` on PATH reporting 18.0):

1. a persistent private PostgreSQL cluster in ``.run/pg``;
2. database ``auto_heal``: installed on the first run (``-i auto_heal``),
   upgraded (``-u auto_heal``) when the module's files changed since;
3. Odoo serving it on 127.0.0.1:PORT, logging to ``.run/odoo.log``
   (configuration in ``.run/odoo.conf``), until ``/web/health`` answers 200;
4. the watchdog, ``bin/auto-heal detect --follow``, on that log.

Ctrl-C (or SIGTERM) stops the watchdog, Odoo and PostgreSQL, in that order.
Without Odoo: ``bin/auto-heal detect`` on a bundled real Odoo 18 log, and how
to get Odoo.

Usage: ``python -m tools.run [--port 8069]``
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
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
DB = MODULE
CLI = REPO_ROOT / "bin" / "auto-heal"
SAMPLE = Path("tests/samples/real/odoo18-numbercall-startup-failure.log")
HEALTH_TIMEOUT = 180
FOLLOW_SECONDS = "10"


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

def write_odoo_conf(pg: PgCluster, addons_path: str, port: int) -> Path:
    """``.run/odoo.conf`` (mode 0600: it holds the database password)."""
    conf = RUN / "odoo.conf"
    text = "\n".join([
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
        "",
    ])
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return conf


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


def install_or_update(odoo_bin: str, conf: Path, pg: PgCluster) -> None:
    state = module_state(pg, DB)
    digest_file = RUN / "module.digest"
    digest = module_digest()
    if state != "installed":
        action, what = ["-i", MODULE, "--without-demo=all"], "install"
    elif not digest_file.exists() or digest_file.read_text() != digest:
        action, what = ["-u", MODULE], "upgrade"
    else:
        say(f"Database {DB}: {MODULE} installed and unchanged.")
        return
    log = RUN / "odoo-install.log"
    cmd = [odoo_bin, "-c", str(conf), "-d", DB, *action, "--stop-after-init"]
    say(f"Database {DB}: {what} {MODULE}" + (" (its files changed)" if what == "upgrade" else "")
        + f", full log: {rel(log)}\n$ {' '.join(cmd)}")
    rc = run_streaming(cmd, log, [Condenser().feed], cwd=RUN)
    state = module_state(pg, DB)
    if rc or state != "installed":
        raise OdooError(f"{MODULE} failed to {what} (Odoo exit {rc}, module state "
                        f"{state or 'none'}): see {rel(log)}")
    digest_file.write_text(digest)


def start_odoo(odoo_bin: str, conf: Path, port: int) -> subprocess.Popen:
    log = RUN / "odoo.log"
    cmd = [odoo_bin, "-c", str(conf), "-d", DB, "--db-filter", f"^{DB}$",
           "--http-port", str(port), "--logfile", str(log)]
    say(f"Starting Odoo\n$ {' '.join(cmd)}")
    with open(RUN / "odoo.stderr.log", "a") as err:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                cwd=RUN, start_new_session=True)


def wait_healthy(odoo: subprocess.Popen, port: int) -> None:
    url = f"http://127.0.0.1:{port}/web/health"
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while time.monotonic() < deadline:
        if odoo.poll() is not None:
            raise OdooError(f"Odoo exited with code {odoo.returncode} before answering; "
                            f"see {rel(RUN / 'odoo.log')} and {rel(RUN / 'odoo.stderr.log')}")
        with contextlib.suppress(OSError, urllib.error.URLError):
            with urllib.request.urlopen(url, timeout=3) as resp:
                if resp.status == 200:
                    return
        time.sleep(0.5)
    raise OdooError(f"{url} did not answer 200 within {HEALTH_TIMEOUT}s; "
                    f"see {rel(RUN / 'odoo.log')}")


def start_watchdog() -> subprocess.Popen | None:
    if cli_missing():
        return None
    cmd = [sys.executable, rel(CLI), "detect", "--log", ".run/odoo.log",
           "--state", ".run/watchdog-state.json", "--follow", FOLLOW_SECONDS]
    say(f"Starting the watchdog\n$ {' '.join(cmd)}")
    return subprocess.Popen(cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                            start_new_session=True)


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
    install_or_update(odoo_bin, conf, pg)

    odoo = start_odoo(odoo_bin, conf, port)
    stack.callback(stopper("Odoo", odoo, timeout=30))
    wait_healthy(odoo, port)
    say("")
    say(f"  Odoo 18 with {MODULE}: http://127.0.0.1:{port}/web   login: admin / admin")
    say(f"  log: {rel(RUN / 'odoo.log')}  (stderr: {rel(RUN / 'odoo.stderr.log')})")
    say(f"  config: {rel(conf)}  e.g. {odoo_bin} -c {rel(conf)} shell")
    say("  Ctrl-C stops Odoo, the watchdog and PostgreSQL.")
    say("")
    watchdog = start_watchdog()
    if watchdog:
        stack.callback(stopper("the watchdog", watchdog, timeout=10))
    while odoo.poll() is None:
        if watchdog and watchdog.poll() is not None:
            say(f"the watchdog exited with code {watchdog.returncode}; Odoo keeps running")
            watchdog = None
        time.sleep(1)
    say(f"Odoo exited on its own with code {odoo.returncode}: see {rel(RUN / 'odoo.log')}")
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
