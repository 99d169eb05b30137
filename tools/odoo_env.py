"""Find and drive a real Odoo 18 for tests and ``make run``. Never imports odoo.

The project finds Odoo only through ``ODOO_BIN`` or an ``odoo`` on PATH, and
only when its ``--version`` prints 18.0. Odoo's own addons path is discovered
by letting Odoo write its default configuration (``--save``) to a temp file.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.proc import signals_ignored, stop_group

REPO_ROOT = Path(__file__).resolve().parent.parent
MODULE = "auto_heal"
VERSION_RE = re.compile(r"\b18\.0\b")

HOW_TO_GET_ODOO = """\
How to get Odoo 18 (the usual ways, nothing in this repository installs it):
  - Debian/Ubuntu packages from https://nightly.odoo.com (18.0/nightly/deb), or
  - a source checkout: git clone -b 18.0 --depth 1 https://github.com/odoo/odoo,
    then in a venv: pip install -r odoo/requirements.txt
Then put an `odoo` launcher reporting 18.0 on PATH, or set ODOO_BIN, e.g.
  ODOO_BIN=/path/to/odoo/odoo-bin make test"""


class OdooError(RuntimeError):
    """A one-line, user-facing error about Odoo."""


def odoo_version(odoo_bin: str) -> str | None:
    """The first line of ``odoo_bin --version``, or None when it does not run."""
    try:
        res = subprocess.run(
            [odoo_bin, "--version"], capture_output=True, text=True, timeout=120,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode:
        return None
    lines = res.stdout.strip().splitlines()
    return lines[0] if lines else None


def find_odoo(reasons: list | None = None) -> str | None:
    """Path to an Odoo 18 launcher, or None.

    ``ODOO_BIN`` wins when set (no fallback to PATH when it is wrong: the user
    asked for that one); otherwise ``odoo`` on PATH. Why a candidate was
    rejected is appended to ``reasons`` when given.
    """
    reasons = reasons if reasons is not None else []
    explicit = os.environ.get("ODOO_BIN", "").strip()
    if explicit:
        candidate = shutil.which(explicit) or explicit
        label = f"ODOO_BIN={explicit}"
    else:
        candidate = shutil.which("odoo")
        label = "`odoo` on PATH"
        if not candidate:
            reasons.append("ODOO_BIN is not set and there is no `odoo` on PATH")
            return None
    if not os.path.isfile(candidate) or not os.access(candidate, os.X_OK):
        reasons.append(f"{label}: no executable file at {candidate}")
        return None
    version = odoo_version(candidate)
    if version is None:
        reasons.append(f"{label} ({candidate}): `--version` failed")
        return None
    if not VERSION_RE.search(version):
        reasons.append(f"{label} ({candidate}) reports {version!r}, not 18.0")
        return None
    return os.path.abspath(candidate)


def odoo_addons_path(odoo_bin: str) -> str:
    """Odoo's own default addons path, read from a config file it saves."""
    with tempfile.TemporaryDirectory(prefix="auto_heal-odoo-conf-") as tmp:
        conf = os.path.join(tmp, "odoo.conf")
        try:
            res = subprocess.run(
                [odoo_bin, "-c", conf, "--save", "--stop-after-init"],
                capture_output=True, text=True, timeout=300, cwd=tmp, stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise OdooError(f"{odoo_bin} -c {conf} --save failed: {exc}") from None
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(conf)
        value = parser.get("options", "addons_path", fallback="").strip()
        if res.returncode or not value:
            tail = (res.stderr or res.stdout).strip().splitlines()
            raise OdooError(
                f"could not read Odoo's addons_path from `{odoo_bin} --save` "
                f"(exit {res.returncode}): {tail[-1] if tail else 'no output'}"
            )
        return value


def addons_dir_with_auto_heal(parent: str | os.PathLike | None = None) -> str:
    """A folder holding a symlink ``auto_heal`` -> the repository root.

    The checkout folder may have any name, but Odoo wants the module folder to
    be named after the module. With ``parent`` the link is (re)made there,
    otherwise in a new temporary folder that the caller removes.
    """
    folder = Path(parent) if parent else Path(tempfile.mkdtemp(prefix="auto_heal-addons-"))
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / MODULE
    if link.is_symlink() and Path(os.readlink(link)) == REPO_ROOT:
        return str(folder)
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise OdooError(f"{link} exists and is not our symlink; remove it")
    link.symlink_to(REPO_ROOT, target_is_directory=True)
    return str(folder)


def count_static_tests(root: Path = REPO_ROOT) -> int:
    """Number of ``def test_...`` methods in the addon's tests/test_*.py."""
    pattern = re.compile(r"^\s*(?:async\s+)?def\s+test_\w*\s*\(", re.M)
    return sum(
        len(pattern.findall(path.read_text(errors="replace")))
        for path in sorted((root / "tests").glob("test_*.py"))
    )


# --- Odoo's log, as it streams ---------------------------------------------------

RECORD_RE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<pid>\d+) (?P<level>[A-Z]+) "
    r"(?P<db>\S+) (?P<logger>[^\s:]+): (?P<message>.*)$"
)


class Condenser:
    """Decide which lines of a streaming Odoo log reach the console.

    Shown: every WARNING, ERROR and CRITICAL record with its traceback (capped),
    INFO records of the ``auto_heal`` module's own loggers (its tests), the
    module loading milestones, and text outside records (stderr tracebacks).
    """

    MAX_CONTINUATION = 60
    MILESTONES = (
        f"Loading module {MODULE} ",
        "Modules loaded.",
        "Starting post tests",
        "when loading database",
    )

    def __init__(self, out=sys.stdout, prefix="  | "):
        self.out = out
        self.prefix = prefix
        self.showing = True  # continuation lines follow the last record's fate
        self.continued = 0

    def feed(self, line: str) -> None:
        match = RECORD_RE.match(line)
        if match:
            self.showing = self._wanted(match)
            self.continued = 0
            if self.showing:
                logger = match["logger"].removeprefix("odoo.addons.")
                self._print(f"{match['level']} {logger}: {match['message'].rstrip()}")
            return
        if not self.showing:
            return
        self.continued += 1
        if self.continued <= self.MAX_CONTINUATION:
            self._print(line)
        elif self.continued == self.MAX_CONTINUATION + 1:
            self._print("... (more in the log file)")

    def _wanted(self, match) -> bool:
        if match["logger"].endswith(".browser") and match["level"] in ("INFO", "WARNING"):
            # the test browser's console (OWL's dev-mode notice...); its errors still show
            return match["message"].startswith(("FAILED", "Tour "))
        if match["level"] not in ("INFO", "DEBUG"):
            return True
        if match["logger"].startswith(f"odoo.addons.{MODULE}."):
            # the test browser's own steps (Chrome started, websocket closed...) stay in
            # the log file; the tests' lines and their outcome reach the console
            return ".Test" not in match["logger"]
        return any(m in match["message"] for m in self.MILESTONES)

    def _print(self, text: str) -> None:
        self.out.write(f"{self.prefix}{text}\n")
        self.out.flush()


class OdooTestCounter:
    """Count the auto_heal tests of one Odoo run from its log records.

    Odoo 18's ``OdooTestResult`` logs ``Starting Class.method ...`` (INFO) when a
    test starts, ``FAIL: ...`` / ``ERROR: ...`` (ERROR) for failures and errors,
    ``skipped Class.method : reason`` (INFO) for skips, each on the logger of the
    test's module. Errors outside a test (setUpClass) are logged on another
    logger but name the test class's module in their description.

    >>> c = OdooTestCounter()
    >>> head = "2025-01-01 00:00:00,000 1"
    >>> for line in [
    ...     f"{head} INFO db odoo.addons.auto_heal.tests.test_a: Starting A.test_1 ...",
    ...     f"{head} INFO db odoo.addons.auto_heal.tests.test_a: Starting A.test_2 ...",
    ...     f"{head} ERROR db odoo.addons.auto_heal.tests.test_a: FAIL: A.test_2",
    ...     f"{head} INFO db odoo.addons.base.tests.test_b: Starting B.test_3 ...",
    ... ]:
    ...     c.feed(line)
    >>> c.passed, c.failed, c.skipped
    (1, 1, 0)
    """

    def __init__(self, module: str = MODULE):
        self.prefix = f"odoo.addons.{module}."
        self.started: set = set()
        self.skipped_tests: set = set()
        self.failures: dict = {}  # (logger, test) -> "FAIL" | "ERROR"
        self.critical: list = []  # CRITICAL messages: install failed, registry not loaded

    def feed(self, line: str) -> None:
        match = RECORD_RE.match(line)
        if not match:
            return
        # Odoo's formatter ends every record's first line with a space
        level, logger, message = match["level"], match["logger"], match["message"].rstrip()
        ours = logger.startswith(self.prefix)
        if level == "CRITICAL":
            self.critical.append(f"{logger}: {message}")
        info = level == "INFO" and ours
        if info and message.startswith("Starting ") and message.endswith(" ..."):
            self.started.add((logger, message[len("Starting "):-len(" ...")]))
        elif info and message.startswith("skipped "):
            self.skipped_tests.add((logger, message[len("skipped "):].split(" : ", 1)[0]))
        elif level == "ERROR" and message.startswith(("FAIL: ", "ERROR: ")):
            flavour, desc = message.split(": ", 1)
            if not (ours or self.prefix in desc):
                return
            if desc.startswith("Subtest "):
                desc = desc[len("Subtest "):].split(" ", 1)[0]
            self.failures.setdefault((logger, desc), flavour)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def skipped(self) -> int:
        return len(self.skipped_tests)

    @property
    def passed(self) -> int:
        bad = {key for key in self.failures if key in self.started}
        return max(0, len(self.started - bad - self.skipped_tests))


def odoo_db_args(cluster) -> list:
    """Odoo's database options for a :class:`tools.pgcluster.PgCluster`.

    The password is not among them: it goes through ``PGPASSWORD`` (see
    :func:`odoo_db_env`), which libpq reads when Odoo's ``db_password`` is unset,
    so that it never shows in ``ps`` or in the printed command.
    """
    return [f"--db_host={cluster.host}", f"--db_port={cluster.port}", f"--db_user={cluster.user}"]


def odoo_db_env(cluster) -> dict:
    """Environment for an Odoo process using :func:`odoo_db_args`."""
    env = dict(os.environ)
    env["PGPASSWORD"] = cluster.password
    return env


def module_state(cluster, db: str, module: str = MODULE) -> str:
    """State of ``module`` in database ``db`` ("installed", ...), "" when none."""
    if not cluster.database_exists(db):
        return ""
    try:
        return cluster.psql(f"SELECT state FROM ir_module_module WHERE name = '{module}'",
                            dbname=db)
    except RuntimeError:
        return ""  # the database exists but Odoo never initialised it


def run_streaming(cmd, logfile, feeders, env=None, cwd=None, mode="w") -> int:
    """Run ``cmd`` (stderr merged into stdout) to its end in its own session.

    Every line goes to ``logfile`` and to each callable in ``feeders``. On
    Ctrl-C or SIGTERM the whole process group is stopped before re-raising.
    """
    with open(logfile, mode, encoding="utf-8", errors="replace") as log:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True, text=True, errors="replace", bufsize=1,
        )
        try:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                line = line.rstrip("\n")
                for feed in feeders:
                    feed(line)
            return proc.wait()
        except BaseException:
            with signals_ignored():
                stop_group(proc, timeout=30)
            raise
        finally:
            proc.stdout.close()
