"""``bin/auto-heal``: the host watchdog's command line.

It needs neither Odoo nor PostgreSQL: it reads the same patterns and logs as
the addon, probes Odoo and PostgreSQL from outside, and fixes files with the
engine's plan / backup / atomic write / verify / rollback, auditing every
change. The commands are in host/commands/ (one module per verb); this is
only the entry point, which turns every error into one line and an exit code
of host/commands/base.py (readme/CLI.md lists them).
"""

import os
import sys

from engine.errors import EngineError
from host.commands import build_parser
from host.commands.base import (
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    UsageError,
    error,
)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except UsageError as exc:
        error(exc)
        return EXIT_USAGE
    except EngineError as exc:
        error(exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("%s: interrupted\n" % PROG)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except OSError as exc:
        error("%s%s" % (exc.strerror or exc, ": %s" % exc.filename if exc.filename else ""))
        return EXIT_USAGE
    except Exception as exc:  # a bug: one line, unless asked for the traceback
        if os.environ.get("AUTO_HEAL_DEBUG"):
            raise
        error(
            "internal error: %s: %s (AUTO_HEAL_DEBUG=1 shows the traceback)"
            % (exc.__class__.__name__, exc)
        )
        return EXIT_BUG
