"""Run one fix action safely: plan, budget, backup, apply, verify, rollback, audit.

:func:`execute` is the only way the watchdog and the addon change anything.
It never lets an exception of an action escape half-way: whatever happens,
the :class:`FixAttempt` says what was done, and the audit log has one line per
step (plan, apply, verify, rollback) with time, actor, action, target,
incident fingerprint, result and duration.

States of an attempt (:func:`engine.fixrun.attempt_verb` says how each moves a
fix run; the fix run's own states are :mod:`engine.fixrun`)::

    planned      dry run: the plan only
    blocked      a precondition does not hold; nothing was touched
    noop         nothing to change (a second run of a done fix)
    refused      over budget or too soon; nothing was touched
    stale        the plan differs from the approved one (``approved_hash``);
                 nothing was touched: a person approves the new plan first
    done         applied and verified
    rolled_back  apply or verify failed; the backup was restored
    failed       apply or verify failed and the rollback failed too (escalate)

Each record carries the hash of the plan it made (``plan_hash``,
:mod:`engine.planhash`). With ``approved_hash``, :func:`execute` compares the
plan it makes now with the one a person approved, before the budget, the
backup or anything else: a plan that would change something and hashes
differently ends ``stale``.

The addon calls it with a database cursor in the context, the watchdog with
roots and a backup folder; see :class:`Context`.
"""

import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from ..budget import decide
from ..planhash import plan_hash, short
from .base import ActionError, Plan, get_action
from .params import DeclaredParams


@dataclass
class Context:
    """What an action may use. Hosts fill in what their actions need."""

    actor: str = "engine"
    #: Anything with ``record(action, target, result, duration, actor=None, **details)``,
    #: such as :class:`engine.audit.AuditLog`. Required to change anything.
    audit: object = None
    #: Host actions: where file backups go, and the only paths they may touch.
    backup_dir: str = ""
    roots: tuple = ()
    #: Odoo actions: a DB-API cursor (Odoo's ``env.cr`` or a psycopg2 cursor).
    cursor: object = None
    #: Named callables a host provides, e.g. Odoo's asset regeneration.
    hooks: dict = field(default_factory=dict)
    #: Seconds a verification may wait for the target to come back.
    timeout: float = 60.0


#: What one attempt can end in (see the module docstring).
ATTEMPT_STATES = ("planned", "blocked", "noop", "refused", "stale", "done", "rolled_back",
                  "failed")


@dataclass
class FixAttempt:
    """One attempt of a fix run: one execution of one action for one target. JSON-able.

    A fix run in Odoo may take several (a budget that says "too soon", a host that
    plans first); each ends in one of :data:`ATTEMPT_STATES`.
    """

    run_id: str
    action: str
    target: str
    actor: str
    incident: str = ""
    params: dict = field(default_factory=dict)
    state: str = "planned"
    plan: dict = field(default_factory=dict)
    backup: dict = field(default_factory=dict)
    output: str = ""
    error: str = ""
    escalate: bool = False
    started: str = ""
    ended: str = ""
    durations: dict = field(default_factory=dict)
    #: The hash of ``plan`` with ``params`` (engine.planhash), "" when nothing was planned.
    plan_hash: str = ""

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})

    def masked(self):
        """This record with secrets masked wherever text may hold them, before it is
        stored or sent. The backup manifest is kept as it is: a rollback needs its
        paths verbatim (it stays on the host that made it)."""
        from ..secrets import mask_secrets, mask_values

        self.params = mask_values(self.params)
        self.plan = mask_values(self.plan)
        self.output = mask_secrets(self.output)
        self.error = mask_secrets(self.error)
        return self


def _now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _Steps:
    """Times each step and writes its audit line."""

    def __init__(self, record, context):
        self.record = record
        self.context = context

    def audit(self, step, result, duration, **details):
        if self.context.audit is None:
            return
        self.context.audit.record(
            f"{self.record.action}.{step}", self.record.target, result, round(duration, 6),
            actor=self.context.actor, run_id=self.record.run_id,
            incident=self.record.incident, **details)

    def run(self, step, function, *args):
        """Call *function*; return (value, error text). Never raises."""
        start = time.monotonic()
        try:
            value, error = function(*args), ""
        except Exception as exc:  # noqa: BLE001 - an action's failure is an outcome
            value, error = None, f"{type(exc).__name__}: {exc}"
        self.record.durations[step] = round(time.monotonic() - start, 6)
        return value, error


def execute(action_name, context, params=None, *, incident="", dry_run=False,
            budget=None, history=(), now=None, run_id=None, approved_hash=None):
    """Plan and, unless *dry_run*, run *action_name* on the target in *params*.

    *budget* is a :class:`engine.budget.BudgetPolicy`; *history* the start
    times (epoch seconds) of earlier runs of this action on this target.
    *approved_hash*: the hash of the plan a person approved; a plan that
    changes something and hashes otherwise now ends ``stale``, untouched.
    """
    action = get_action(action_name)
    given = dict(params or {})
    record = FixAttempt(run_id=run_id or uuid.uuid4().hex[:12], action=action.name, target="",
                       actor=context.actor, incident=incident, params=given,
                       started=_now_iso())
    steps = _Steps(record, context)
    try:
        params = record.params = action.check_params(given)
    except ActionError as exc:  # nothing planned, nothing touched
        return _finish(record, steps, "blocked", error=f"bad parameters: {exc}")

    plan, error = steps.run("plan", action.plan, context, DeclaredParams(action, params))
    if error:
        record.target = str(params.get("target") or params.get("path") or "")
        return _finish(record, steps, "blocked", error=f"planning failed: {error}")
    record.target = plan.target
    record.plan = plan.to_dict()
    record.plan_hash = plan_hash(plan, params)
    steps.audit("plan", "planned", record.durations["plan"], changes=plan.changes,
                summary=plan.summary, plan_hash=record.plan_hash)
    if approved_hash and plan.changes and record.plan_hash != approved_hash and not dry_run:
        return _finish(record, steps, "stale", error=(
            f"the plan changed since it was approved (approved {short(approved_hash)}, "
            f"now {short(record.plan_hash)}): nothing was changed; approve the new plan"),
            approved_hash=approved_hash, plan_hash=record.plan_hash)
    if plan.blocked_by:
        reasons = "; ".join(f"{p.description}: {p.detail}" if p.detail else p.description
                            for p in plan.blocked_by)
        return _finish(record, steps, "blocked", error=f"precondition failed: {reasons}")
    if dry_run:
        return _finish(record, steps, "planned")
    if not plan.changes:
        return _finish(record, steps, "noop", output="nothing to change")
    if context.audit is None:
        raise ActionError(f"{action.name}: no audit log, so nothing may change")
    if budget is not None:
        decision = decide(budget, list(history), time.time() if now is None else now)
        if not decision.allowed:
            record.escalate = decision.escalate
            return _finish(record, steps, "refused", error=decision.reason)

    manifest, error = steps.run("backup", action.backup, context, plan)
    if error:
        return _finish(record, steps, "blocked", error=f"backup failed, nothing changed: {error}")
    record.backup = manifest or {}
    output, error = steps.run("apply", action.apply, context, plan, record.backup)
    record.output = output or ""
    steps.audit("apply", "failed" if error else "applied", record.durations["apply"],
                error=error)
    if not error:
        verdict, error = steps.run("verify", action.verify, context, plan)
        ok, detail = verdict if verdict else (False, error)
        steps.audit("verify", "ok" if ok else "failed", record.durations["verify"],
                    detail=detail)
        if ok:
            record.output = _join(record.output, f"verified: {detail}")
            return _finish(record, steps, "done")
        error = f"verification failed: {detail}"
    return _roll_back(action, context, plan, record, steps, error)


def _roll_back(action, context, plan, record, steps, cause):
    output, error = steps.run("rollback", action.rollback, context, plan, record.backup)
    steps.audit("rollback", "failed" if error else "rolled_back",
                record.durations["rollback"], cause=cause, error=error)
    record.output = _join(record.output, output or "")
    if error:
        record.escalate = True
        return _finish(record, steps, "failed", error=f"{cause}; rollback failed: {error}")
    return _finish(record, steps, "rolled_back", error=cause)


def rollback_run(record, context):
    """Undo a done run from its stored plan and backup (``auto-heal rollback``)."""
    action = get_action(record.action)
    if record.state != "done":
        raise ActionError(f"run {record.run_id} is {record.state}; only a done run "
                          "can be rolled back")
    if not action.reversible:
        raise ActionError(f"{action.name} cannot be rolled back")
    if context.audit is None:
        raise ActionError(f"{action.name}: no audit log, so nothing may change")
    steps = _Steps(record, context)
    plan = Plan.from_dict(record.plan)
    output, error = steps.run("rollback", action.rollback, context, plan, record.backup)
    steps.audit("rollback", "failed" if error else "rolled_back",
                record.durations["rollback"], cause="requested", error=error)
    record.output = _join(record.output, output or "")
    if error:
        raise ActionError(f"rollback of run {record.run_id} failed: {error}")
    record.state = "rolled_back"
    record.ended = _now_iso()
    return record


def _join(*parts):
    return "\n".join(p for p in parts if p)


def _finish(record, steps, state, output="", error="", **details):
    record.state = state
    record.output = _join(record.output, output)
    record.error = error
    record.ended = _now_iso()
    if state in ("blocked", "refused", "stale"):
        steps.audit(state, state, 0.0, reason=error, **details)
    return record
