"""The commands of ``bin/auto-heal``, one module per verb (borg style).

Each module has ``register(subparsers)``, which adds its parser, next to
``run(args)``, its handler, which returns an exit code of
:mod:`host.commands.base`. :data:`COMMANDS` is the one registry: the order of
``auto-heal --help``, and the sections of readme/CLI.md that tools/cli_doc.py
generates from the parser.
"""

from . import (
    backup,
    detect,
    fix,
    fix_cron,
    handover,
    health,
    monitor,
    reset,
    restore,
    rollback,
    run_approved,
    status,
)
from .base import EXIT_CODES_EPILOG, PROG, Parser

COMMANDS = (
    detect,
    fix_cron,
    health,
    backup,
    fix,
    rollback,
    run_approved,
    monitor,
    reset,
    status,
    handover,
    restore,
)


def build_parser(argv=None):
    """The parser of ``bin/auto-heal``. ``fix``'s action sub-commands are built only
    when *argv* starts with ``fix``: a start that fixes nothing does not load the
    actions (idle memory)."""
    parser = Parser(
        prog=PROG,
        description="auto_heal host watchdog: detect Odoo failures in logs, probe health, "
        "fix files safely. Works without Odoo and without PostgreSQL.",
        epilog=EXIT_CODES_EPILOG,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for command in COMMANDS:
        if command is fix:
            fix.register(sub, with_actions=bool(argv) and argv[:1] == ["fix"])
        else:
            command.register(sub)
    return parser
