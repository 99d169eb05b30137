"""``fix ACTION``: plan and run one host fix action through the engine's runner.

Each action is a sub-command whose options are derived from the parameters the
action declares (engine/actions/params.py), so ``fix ACTION --help`` shows that
action's options only.
"""

import json
import os

from engine.errors import EngineError
from engine.secrets import mask_values

from . import runs
from .base import (
    EXIT_ATTENTION,
    EXIT_OK,
    HELP_FORMAT,
    OK_STATES,
    Parser,
    UsageError,
    audit_options,
    budget_options,
    default_dir,
    run_options,
)

FIX_EPILOG = """\
Every fix goes through the engine's runner: plan (printed first, with a
unified diff for files, secrets masked) -> budget -> backup -> apply ->
verify -> rollback when verification fails. Each step is one line in the
audit log; the run record is kept in the runs folder for `rollback RUN_ID`.

The host actions are remove_deprecated_cron_fields, fix_permissions,
restart_service and restore_config; `fix ACTION --help` lists the options of
one, derived from the parameters it declares (engine/actions/params.py).

exit codes: 0 done, nothing to change, or planned (--dry-run); 1 refused,
blocked, rolled back or failed; 2 bad input; 3 internal error.
"""

FIX_ACTION_EPILOG = """\
budgets: an action may run on one target at most --budget-max-runs times
within --budget-window seconds (default 3 in 1800), waiting --budget-delay
seconds after a run, doubling each time (default 30). Over budget the run
is refused, nothing is touched, and the record says escalate.

defaults: --backup-dir $AUTO_HEAL_HOME/backups, --runs-dir $AUTO_HEAL_HOME/runs,
--versions $AUTO_HEAL_HOME/config (else /var/lib/odoo_auto_heal/..., else
~/.local/state/auto_heal/...); --audit-log as for fix-cron.

exit codes: 0 done, nothing to change, or planned (--dry-run); 1 refused,
blocked, rolled back or failed; 2 bad input; 3 internal error.
"""


def register(sub, with_actions=True):
    """``fix``; with *with_actions*, a sub-command per registered action (a start that
    does not fix anything does not load the actions: idle memory)."""
    p = sub.add_parser(
        "fix",
        formatter_class=HELP_FORMAT,
        help="plan and run one fix action on this host",
        description="Print the plan of a host fix action, then run it (backup, apply, "
        "verify, rollback on failure) unless --dry-run. `fix ACTION --help` shows that "
        "action's options.",
        epilog=FIX_EPILOG,
    )
    if with_actions:
        _add_actions(p)
    else:
        p.add_argument("action", metavar="ACTION", help="the fix action, e.g. fix_permissions")
        p.set_defaults(func=run)


def _add_actions(parser):
    """``fix ACTION``: a sub-command per registered action (engine/actions/params.py)."""
    from engine.actions import actions
    from engine.actions.params import add_cli_options

    parents = [audit_options(), run_options(), budget_options()]
    common = Parser(add_help=False)
    common.add_argument("--dry-run", action="store_true", help="print the plan only")
    common.add_argument("--yes", action="store_true", help="run without asking (the default)")
    common.add_argument("--json", action="store_true", help="print the run record as JSON")
    common.add_argument("--incident", metavar="FINGERPRINT", default="",
                        help="the incident this run is for (kept in the record and the audit "
                        "log)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    sub.required = True
    for name, action in actions().items():
        if action.runs_on != "host":
            p = sub.add_parser(name, help=f"(runs inside Odoo) {action.description}")
            p.set_defaults(func=run, fix_action=name)
            continue
        p = sub.add_parser(name, parents=[common, *parents], formatter_class=HELP_FORMAT,
                           help=action.description, description=action.description,
                           epilog=FIX_ACTION_EPILOG)
        add_cli_options(p, action)
        p.set_defaults(func=run, fix_action=name)


def _fix_params(action, args):
    """The parameters of *action* from its ``fix ACTION`` options, checked: bad input
    (a missing file, a wrong type, a rule across options) is exit 2 here, before any
    plan."""
    from engine.actions.params import params_from_cli

    params = params_from_cli(action, args)
    if action.name == "restore_config":
        params.setdefault("versions_dir", default_dir("config"))
    for param in action.params:
        if param.kind not in ("path", "paths") or param.name not in params \
                or param.name in ("paths", "path", "pg_log", "versions_dir"):
            continue  # data paths are the plan's business; pg_ctl creates its log
        for path in params[param.name] if param.kind == "paths" else [params[param.name]]:
            if not os.path.exists(path):
                raise UsageError("argument %s: no such file or folder: %s" % (param.option,
                                                                              path))
    for path in params.get("paths", []) if action.name == "remove_deprecated_cron_fields" \
            else []:
        if not os.path.exists(path):
            raise EngineError("no such file or folder: %s" % path)
    return action.check_params(params)


def run(args):
    action = runs.host_action(args.fix_action if hasattr(args, "fix_action") else args.action)
    params = _fix_params(action, args)
    context = runs.run_context(args, timeout=params.get("timeout", 60.0))
    record = runs.execute(action.name, context, params, runs.run_store(args),
                          dry_run=args.dry_run, budget=runs.budget_policy(args),
                          incident=args.incident)
    if args.json:
        print(json.dumps(mask_values(record.to_dict()), indent=2, default=str))
    else:
        runs.print_record(record)
    return EXIT_OK if record.state in OK_STATES else EXIT_ATTENTION
