"""The runner as the fix commands use it (``fix``, ``fix-cron``, ``rollback``,
``restore``, ``run-approved``): audit log, context, run records, budgets, and
the record printed for a person."""

import dataclasses
import sys

from engine import audit as audit_mod

from .base import UsageError, default_dir, one_line


def audit_log(args):
    log = audit_mod.AuditLog(args.audit_log or audit_mod.default_audit_log())
    log.check_writable()
    return log


def run_context(args, actor=None, roots=(), timeout=60.0):
    from engine.actions.runner import Context

    return Context(
        actor=actor or audit_mod.default_actor("cli"),
        audit=audit_log(args),
        backup_dir=args.backup_dir or default_dir("backups"),
        roots=tuple(roots),
        timeout=timeout,
    )


def run_store(args):
    from engine.actions.store import RunStore

    return RunStore(args.runs_dir or default_dir("runs"))


def budget_policy(args):
    from engine.budget import BudgetPolicy

    return BudgetPolicy(
        max_runs=args.budget_max_runs, window=args.budget_window, first_delay=args.budget_delay
    )


def execute(name, context, params, store, *, dry_run=False, budget=None, incident="",
            target=None):
    """Run *name* through the runner with the budget history of its target; save it.

    The target is what the plan says; a plan-only run (not audited) finds it
    first unless the caller knows it.
    """
    from engine.actions.runner import execute as run

    history = ()
    if budget is not None and not dry_run:
        if target is None:
            quiet = dataclasses.replace(context, audit=None)
            target = run(name, quiet, params, dry_run=True).target
        if target:
            history = store.history(name, target)
    record = run(name, context, params, incident=incident, dry_run=dry_run,
                 budget=budget, history=history)
    return store.save(record.masked())


def print_record(record, out=None):
    from engine.actions.base import Plan

    out = out or sys.stdout
    if record.plan:
        plan = Plan.from_dict(record.plan)
        out.write(plan.text() + "\n")
        if plan.diff:
            out.write(plan.diff if plan.diff.endswith("\n") else plan.diff + "\n")
    out.write("run %s: %s\n" % (record.run_id, record.state))
    for line in (record.output or "").splitlines():
        out.write("  %s\n" % line)
    if record.error:
        out.write("%s: %s\n" % ("refused" if record.state == "refused" else "reason",
                                one_line(record.error)))
    if record.escalate:
        out.write("escalate: a person must look at %s\n" % (record.target or record.action))
    out.flush()


def host_action(name):
    from engine.actions.base import get_action

    action = get_action(name)  # ActionError (exit 2) names the known ones
    if action.runs_on != "host":
        raise UsageError("%s runs inside Odoo (database level): approve and run it in the "
                         "backend" % name)
    return action
