"""``rollback RUN_ID``: undo a done host fix run from the backup in its run record."""

from engine.actions.base import ActionError

from . import runs
from .base import EXIT_ATTENTION, EXIT_OK, HELP_FORMAT, audit_options, error, run_options

ROLLBACK_EPILOG = """\
Undoes a done host run from the backup kept in its run record: exact bytes,
mode and owner for files, modes and owners for fix_permissions. A restart
cannot be undone (refused). The record is updated to rolled_back.

exit codes: 0 rolled back, 1 refused (not a done run, irreversible) or the
rollback failed, 2 bad input (unknown run id), 3 internal error.
"""


def register(sub):
    p = sub.add_parser(
        "rollback",
        parents=[audit_options(), run_options()],
        formatter_class=HELP_FORMAT,
        help="undo a done host fix run from its backup",
        description="Undo a done host fix run from the backup kept in its run record.",
        epilog=ROLLBACK_EPILOG,
    )
    p.add_argument("run_id", metavar="RUN_ID", help="the run id `fix` printed")
    p.set_defaults(func=run)



def run(args):
    from engine.actions.runner import rollback_run

    store = runs.run_store(args)
    record = store.load(args.run_id)  # EngineError: unknown or malformed id (exit 2)
    runs.host_action(record.action)
    context = runs.run_context(args)
    try:
        rollback_run(record, context)
    except ActionError as exc:
        store.save(record.masked())
        error(exc)
        return EXIT_ATTENTION
    store.save(record.masked())
    print("run %s: %s" % (record.run_id, record.state))
    for line in record.output.splitlines():
        print("  %s" % line)
    return EXIT_OK
