"""What every command of ``bin/auto-heal`` shares: the exit codes, the one-line
errors, the argument validators and the default folders.

Exit codes, all commands (readme/CLI.md's table is generated from
:data:`EXIT_CODES`, see tools/cli_doc.py):

>>> for code, meaning in EXIT_CODES:
...     print(code, meaning.split(":")[0].split(" (")[0])
0 nothing to report
1 something to look at
2 bad input
3 internal error

Errors are one line on stderr: ``auto-heal: error: ...``; warnings likewise
``auto-heal: warning: ...``. Never a traceback.
"""

import argparse
import os
import sys
from urllib.parse import urlsplit

from engine import audit as audit_mod
from engine.errors import EngineError
from engine.secrets import mask_secrets

PROG = "auto-heal"

EXIT_OK = 0
EXIT_ATTENTION = 1
EXIT_USAGE = 2
#: ``health`` follows the monitoring-plugin convention: critical is 2, as bad input.
EXIT_CRITICAL = 2
EXIT_BUG = 3
EXIT_INTERRUPTED = 130

EXIT_CODES = (
    (EXIT_OK, "nothing to report: no incident, health ok, nothing to fix, or done"),
    (EXIT_ATTENTION, "something to look at: incidents found (`detect`), a health warning, files "
     "that would change (`fix-cron --check`), a fix run that was refused, blocked, rolled back "
     "or failed (`fix`, `fix-cron`, `rollback`, `run-approved`)"),
    (EXIT_USAGE, "bad input (missing or unreadable file, bad option value, malformed XML, broken "
     "patterns file), or a critical health check"),
    (EXIT_BUG, "internal error (a bug). `AUTO_HEAL_DEBUG=1` shows the traceback"),
)

#: The epilog of ``auto-heal --help``.
EXIT_CODES_EPILOG = """exit codes: 0 nothing to report, 1 something to look at, 2 bad input
(or a critical health check), 3 internal error."""

SEVERITIES = ("low", "medium", "high", "critical")

SYSTEM_STATE_DIR = "/var/lib/odoo_auto_heal"

#: States of a run record that need no one's attention.
OK_STATES = ("done", "noop", "planned")

HELP_FORMAT = argparse.RawDescriptionHelpFormatter


class UsageError(Exception):
    """Bad command line: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message):
        raise UsageError(message)


def one_line(text):
    return mask_secrets(" ".join(str(text).split()))


def error(message):
    sys.stderr.write("%s: error: %s\n" % (PROG, one_line(message)))


def warning(message):
    sys.stderr.write("%s: warning: %s\n" % (PROG, one_line(message)))


def default_dir(sub, environ=None):
    """``$AUTO_HEAL_HOME/<sub>``, else /var/lib/odoo_auto_heal/<sub> when
    writable, else ``$XDG_STATE_HOME/auto_heal/<sub>`` (~/.local/state)."""
    environ = os.environ if environ is None else environ
    home = environ.get("AUTO_HEAL_HOME")
    if home:
        return os.path.join(home, sub)
    if audit_mod._writable_dir(SYSTEM_STATE_DIR):
        return os.path.join(SYSTEM_STATE_DIR, sub)
    state = environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(state, "auto_heal", sub)


def option_name(dest):
    return "--" + dest.replace("_", "-")


def check_readable(path, what="log file"):
    if not os.path.exists(path):
        raise EngineError("%s not found: %s" % (what, path))
    if os.path.isdir(path):
        raise EngineError("%s is a folder: %s" % (what, path))
    if not os.access(path, os.R_OK):
        raise EngineError("%s is not readable: %s" % (what, path))


def load_patterns(path):
    """The pattern set of *path*, else $AUTO_HEAL_PATTERNS, else the addon's; one
    warning per broken pattern."""
    from engine.patterns import load_patterns as load
    from engine.scanner import DEFAULT_PATTERNS

    pattern_set = load(path or os.environ.get("AUTO_HEAL_PATTERNS") or DEFAULT_PATTERNS)
    for message in pattern_set.errors:
        warning("patterns: %s" % message)
    return pattern_set


# --------------------------------------------------------------------------
# argument types


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text) from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError("%r must be a number > 0" % text)
    return value


def non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text) from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("%r must be a number >= 0" % text)
    return value


def percent(text):
    value = non_negative_float(text)
    if value > 100:
        raise argparse.ArgumentTypeError("%r must be a percentage between 0 and 100" % text)
    return value


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % text) from None
    if value < 1:
        raise argparse.ArgumentTypeError("%r must be at least 1" % text)
    return value


def url(text):
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError("%r is not an http(s) URL" % mask_secrets(text))
    return text


# --------------------------------------------------------------------------
# options several commands share (argparse copies a parent's options)


def audit_options():
    parent = Parser(add_help=False)
    parent.add_argument(
        "--audit-log", metavar="FILE", help="JSON-lines audit log (default: see below)"
    )
    return parent


def run_options():
    parent = Parser(add_help=False)
    parent.add_argument(
        "--backup-dir", metavar="DIR", help="where file backups go (default: see below)"
    )
    parent.add_argument(
        "--runs-dir", metavar="DIR", help="where run records go (default: see below)"
    )
    return parent


def budget_options():
    parent = Parser(add_help=False)
    parent.add_argument(
        "--budget-max-runs", type=positive_int, default=3, metavar="N",
        help="at most N runs per action and target within the window (default: 3)",
    )
    parent.add_argument(
        "--budget-window", type=positive_float, default=1800.0, metavar="SECONDS",
        help="the budget window (default: 1800)",
    )
    parent.add_argument(
        "--budget-delay", type=non_negative_float, default=30.0, metavar="SECONDS",
        help="wait after a run, doubling after each further run (default: 30)",
    )
    return parent
