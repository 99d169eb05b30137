"""What ``make test`` runs: pytest, then the addon's tests in a real Odoo 18.

1. Start a private PostgreSQL cluster (:class:`tools.pgcluster.PgCluster`).
2. Run pytest (``engine/`` and ``host/``, doctests included) with a JUnit XML
   report, exporting to it: ``AUTO_HEAL_PGHOST``, ``AUTO_HEAL_PGPORT``,
   ``AUTO_HEAL_PGUSER``, ``AUTO_HEAL_PGPASSWORD``, ``AUTO_HEAL_PG_BINDIR``,
   ``ODOO_BIN`` (resolved launcher, or empty) and ``AUTO_HEAL_ODOO_ADDONS_PATH``
   (Odoo's addons path plus a folder holding an ``auto_heal`` symlink).
3. When an Odoo 18 is found: install ``auto_heal`` with ``--test-enable`` on a
   fresh database, count its tests from the log, drop the database. When none
   is found (or ``--no-odoo``), say so loudly and count the addon's test
   methods as skipped, never as passed.
4. End with one line ``N passed, N failed, N skipped``; exit 1 when anything
   failed.

Usage: ``python -m tools.testrun [--no-odoo] [PYTEST_ARGS...]``
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

if not __package__:  # run as a script: python tools/testrun.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.odoo_env import (  # noqa: E402
    HOW_TO_GET_ODOO,
    MODULE,
    REPO_ROOT,
    Condenser,
    OdooError,
    OdooTestCounter,
    addons_dir_with_auto_heal,
    count_static_tests,
    find_odoo,
    module_state,
    odoo_addons_path,
    odoo_db_args,
    odoo_db_env,
    run_streaming,
)
from tools.pgcluster import PgCluster, PgError  # noqa: E402
from tools.proc import Interrupted, free_port, signals_ignored, signals_raise  # noqa: E402

OUT_DIR = REPO_ROOT / ".tmp"
#: Python packages for Odoo's test browser (requirements-odoo-tests.txt), kept apart.
ODOO_TEST_SITE = REPO_ROOT / ".venv" / "odoo-test-site"


def odoo_test_site() -> str:
    """The folder of requirements-odoo-tests.txt when it holds websocket-client, else ""."""
    return str(ODOO_TEST_SITE) if (ODOO_TEST_SITE / "websocket").is_dir() else ""


@dataclass
class Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    notes: list = field(default_factory=list)

    def line(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"

    def fail(self, message: str) -> None:
        self.failed += 1
        self.notes.append(f"FAILED: {message}")


def section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def banner(lines) -> None:
    width = max(len(line) for line in lines) + 8
    print("\n" + "!" * width)
    for line in lines:
        print(f"!!! {line.ljust(width - 8)} !!!")
    print("!" * width, flush=True)


# --- pytest ------------------------------------------------------------------------

def count_junit(path: Path) -> Counts:
    """Count a pytest JUnit XML report: errors count as failures."""
    counts = Counts()
    for case in ET.parse(path).getroot().iter("testcase"):
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            counts.failed += 1
        elif "skipped" in tags:
            counts.skipped += 1
        else:
            counts.passed += 1
    return counts


def run_pytest(env: dict, args: list) -> Counts:
    section("pytest: engine/ and host/ (with doctests)")
    OUT_DIR.mkdir(exist_ok=True)
    junit = OUT_DIR / "pytest-junit.xml"
    junit.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", f"--junitxml={junit}", *args]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env)
    try:
        rc = proc.wait()
    except BaseException:
        with signals_ignored():
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise
    counts = count_junit(junit) if junit.exists() else Counts()
    if rc not in (0, 1, 5) or (rc == 1 and not counts.failed):
        counts.fail(f"pytest exited with code {rc} (see its output above)")
    return counts


# --- Odoo --------------------------------------------------------------------------

def odoo_skipped(reason_lines) -> Counts:
    tests = count_static_tests()
    banner([
        "ODOO 18 NOT FOUND: the addon's Odoo tests were SKIPPED, not run" if reason_lines
        else "ODOO TESTS SKIPPED ON PURPOSE (ODOO=0): the addon's Odoo tests were NOT run",
        *reason_lines,
        f"{tests} Odoo test method(s) in tests/test_*.py counted as skipped.",
        *([] if not reason_lines else HOW_TO_GET_ODOO.splitlines()),
    ])
    counts = Counts(skipped=tests)
    counts.notes.append("SKIPPED: " + ("no Odoo 18 found, see the banner above" if reason_lines
                                       else "ODOO=0"))
    return counts


def run_odoo_tests(odoo_bin: str, odoo_path: str, pg: PgCluster, tags: str = "") -> Counts:
    section(f"Odoo 18: install {MODULE} with --test-enable ({odoo_bin})")
    counts = Counts()
    db = f"{MODULE}_test_{secrets.token_hex(4)}"
    work = Path(tempfile.mkdtemp(prefix="auto_heal-odoo-"))
    logfile = OUT_DIR / "odoo-test.log"
    try:
        addons = f"{odoo_path},{addons_dir_with_auto_heal(work / 'addons')}"
        conf = work / "odoo.conf"  # isolates the run from ~/.odoorc
        conf.write_text(f"[options]\ndata_dir = {work / 'data'}\n")
        cmd = [
            odoo_bin, "-c", str(conf), f"--addons-path={addons}", "-d", db, "-i", MODULE,
            "--test-enable", f"--test-tags={tags or '/' + MODULE}", "--stop-after-init",
            "--log-level=test",
            "--without-demo=all", *odoo_db_args(pg), "--http-interface=127.0.0.1",
            f"--http-port={free_port()}",
        ]
        print("$ " + " ".join(cmd))
        print(f"  full log: {logfile}", flush=True)
        counter = OdooTestCounter()
        env = odoo_db_env(pg)
        extras = odoo_test_site()
        if extras:  # websocket-client for Odoo's test browser, outside Odoo's own venv
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [extras,
                                                              env.get("PYTHONPATH")]))
        else:
            print(f"  note: {ODOO_TEST_SITE} is missing (make venv installs it): Odoo's "
                  "browser tests will be skipped unless Odoo has websocket-client")
        rc = run_streaming(cmd, logfile, [counter.feed, Condenser().feed], env=env, cwd=work)
        state = module_state(pg, db)
        counts.passed, counts.skipped = counter.passed, counter.skipped
        counts.failed = counter.failed
        if counter.failed:
            counts.notes.append(f"{counter.failed} auto_heal Odoo test(s) failed: see {logfile}")
        if state != "installed":
            counts.fail(f"{MODULE} did not install (module state: {state or 'none'}); "
                        f"{(counter.critical or ['see ' + str(logfile)])[0]}")
        elif not counter.started:
            counts.fail(f"no {MODULE} tests ran (Odoo exit code {rc}); "
                        f"{count_static_tests()} test method(s) found in tests/test_*.py")
        if rc and not counts.failed:
            counts.fail(f"Odoo exited with code {rc} although no test failed: see {logfile}")
    finally:
        with signals_ignored():
            try:
                pg.drop_database(db)
            except PgError as exc:
                print(f"warning: could not drop database {db}: {exc}", file=sys.stderr)
            shutil.rmtree(work, ignore_errors=True)
    return counts


# --- main --------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/testrun.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
    )
    parser.add_argument("--no-odoo", action="store_true",
                        help="skip the Odoo phase on purpose (counted as skipped)")
    parser.add_argument("--odoo-tags", default="",
                        help="run only these Odoo test tags (default: every auto_heal test), "
                             "e.g. /auto_heal:TestFixRun")
    opts, pytest_args = parser.parse_known_args(argv)
    if pytest_args[:1] == ["--"]:
        pytest_args = pytest_args[1:]

    total, parts = Counts(), {}
    interrupted = None
    with signals_raise():
        try:
            reasons = []
            odoo_bin = None if opts.no_odoo else find_odoo(reasons)
            odoo_path, odoo_error, addons_tmp = "", None, None
            if odoo_bin:
                try:
                    odoo_path = odoo_addons_path(odoo_bin)
                    addons_tmp = addons_dir_with_auto_heal()
                except OdooError as exc:
                    odoo_error = str(exc)
            with PgCluster(handle_signals=False) as pg:
                print(f"PostgreSQL: private cluster on {pg.host}:{pg.port} ({pg.bindir})")
                env = dict(os.environ)
                env.update({
                    "AUTO_HEAL_PGHOST": pg.host,
                    "AUTO_HEAL_PGPORT": str(pg.port),
                    "AUTO_HEAL_PGUSER": pg.user,
                    "AUTO_HEAL_PGPASSWORD": pg.password,
                    "AUTO_HEAL_PG_BINDIR": pg.bindir,
                    "ODOO_BIN": odoo_bin if odoo_path else "",
                    "AUTO_HEAL_ODOO_ADDONS_PATH":
                        f"{odoo_path},{addons_tmp}" if odoo_path else "",
                })
                try:
                    parts["pytest"] = run_pytest(env, pytest_args)
                finally:
                    if addons_tmp:
                        shutil.rmtree(addons_tmp, ignore_errors=True)
                if opts.no_odoo:
                    parts["odoo"] = odoo_skipped([])
                elif odoo_error:
                    section("Odoo 18")
                    parts["odoo"] = Counts()
                    parts["odoo"].fail(odoo_error)
                elif not odoo_bin:
                    parts["odoo"] = odoo_skipped(reasons)
                else:
                    parts["odoo"] = run_odoo_tests(odoo_bin, odoo_path, pg, opts.odoo_tags)
        except PgError as exc:
            parts["setup"] = Counts()
            parts["setup"].fail(f"PostgreSQL: {exc}")
        except Interrupted as exc:
            interrupted = exc.exit_code
        except KeyboardInterrupt:
            interrupted = 130

    section("summary")
    for name, counts in parts.items():
        print(f"  {name:7} {counts.line()}")
        for note in counts.notes:
            print(f"          {note}")
        total.passed += counts.passed
        total.failed += counts.failed
        total.skipped += counts.skipped
    if interrupted:
        print("  interrupted: the counts above are partial; everything started was stopped")
    print(total.line(), flush=True)
    if interrupted:
        return interrupted
    return 1 if total.failed else 0


if __name__ == "__main__":
    sys.exit(main())
