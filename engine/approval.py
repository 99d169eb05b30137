"""Approvals you can trust: expiry, four eyes, distinct approvers, the waiting states.

Pure like :mod:`engine.policy`: the addon passes the environment, the
Settings and who is who; nothing here reads a database or a clock. The
lifecycle of a fix run around its approval (the whole state machine: engine/fixrun.py)::

               ┌─────────── re-plan (a new plan: approvals given to the old one are cleared)
               v │
    draft ──> pending ──approve (enough distinct approvers)──> approved ──> running ──> done ...
      ^        │ │ ^                                               │           │
      │        │ │ └─ approve (1 of 2): stays pending              │ request   │ the runner's
      │        │ │                                                 │ changed   │ plan differs
      │        │ └─ deadline passed (cron) ──> expired             v (claim)   v (run time)
      │        │      (a host plan reported for approval: running -> pending)
      │        └─ reject ──> rejected                      stale <─┴───────────┘
      │                                                      │ approve the new plan -> approved
      └── re-plan cannot plan ───────────────────────────────┤ re-plan -> pending
                                                             │ deadline passed -> expired
                                                             └ reject -> rejected

* **Expiry.** A run waiting for approval (``pending`` or ``stale``) has a
  deadline from its environment and severity (defaults: prod 24 h, staging
  72 h, dev never; Settings override each). A cron moves a run past its
  deadline to ``expired``: a real transition, with an audit line and a
  notification; an expired run is never approved, and the next occurrence of
  its incident plans a fresh one.
* **Four eyes.** Where it is on (by default in prod), a person who planned,
  submitted or changed the request of a run cannot approve it.
* **Distinct approvers.** A critical run can need two approvers; one person
  approving twice counts once.

>>> expiry_hours("prod", "high"), expiry_hours("staging", "low"), expiry_hours("dev", "critical")
(24, 72, 0)
>>> expiry_hours("prod", "critical", {"prod": {"critical": 4}})
4
>>> refusal(7, requesters={7}, approvers=(), four_eyes=True, environment="prod").split(": ")
['prod', 'four eyes', 'you planned or submitted this fix run, so another Auto-Heal Manager \
must approve it']
>>> refusal(7, requesters={7}, approvers=(), four_eyes=False, environment="dev")
''
>>> refusal(8, requesters={7}, approvers=[8], four_eyes=True, environment="prod")
'you already approved this plan: a second, different person must approve it too'
"""

from datetime import timedelta

from .errors import EngineError
from .patterns import SEVERITIES
from .policy import ENVIRONMENTS

#: Hours a run may wait for approval, by environment; 0 means never expires.
DEFAULT_EXPIRY_HOURS = {"dev": 0, "staging": 72, "prod": 24}
#: Whether the person who asked for a run may not approve it, by environment.
DEFAULT_FOUR_EYES = {"dev": False, "staging": False, "prod": True}
#: The longest wait Settings accept: a year.
MAX_EXPIRY_HOURS = 24 * 366

class ApprovalError(EngineError):
    """A setting, a severity or a transition the approval rules do not allow."""


def _check(environment, severity):
    if environment not in ENVIRONMENTS:
        raise ApprovalError(f"environment must be one of {', '.join(ENVIRONMENTS)}, "
                            f"not {environment!r}")
    if severity not in SEVERITIES:
        raise ApprovalError(f"severity must be one of {', '.join(SEVERITIES)}, "
                            f"not {severity!r}")


def check_hours(value):
    """*value* as whole hours between 0 (never) and :data:`MAX_EXPIRY_HOURS`.

    >>> check_hours("12")
    12
    >>> check_hours(-1)
    Traceback (most recent call last):
    ...
    engine.approval.ApprovalError: expiry must be whole hours from 0 (never) to 8784, not -1
    """
    try:
        hours = int(value)
    except (TypeError, ValueError):
        hours = None
    if hours is None or isinstance(value, bool) or str(hours) != str(value).strip() \
            or not 0 <= hours <= MAX_EXPIRY_HOURS:
        raise ApprovalError(f"expiry must be whole hours from 0 (never) to "
                            f"{MAX_EXPIRY_HOURS}, not {value!r}")
    return hours


def expiry_hours(environment, severity, settings=None):
    """Hours a run of *severity* waits for approval in *environment*; 0: never.

    *settings* is ``{environment: {severity: hours}}`` (Settings); a missing
    value takes the environment's default (:data:`DEFAULT_EXPIRY_HOURS`).

    >>> expiry_hours("staging", "critical", {"staging": {"low": 1}})
    72
    >>> expiry_hours("dev", "low", {"dev": {"low": 8}})
    8
    >>> expiry_hours("qa", "low")
    Traceback (most recent call last):
    ...
    engine.approval.ApprovalError: environment must be one of dev, staging, prod, not 'qa'
    """
    _check(environment, severity)
    value = ((settings or {}).get(environment) or {}).get(severity)
    if value is None or value == "":
        return DEFAULT_EXPIRY_HOURS[environment]
    return check_hours(value)


def deadline(since, hours):
    """When a run waiting since *since* expires; None when it never does.

    >>> from datetime import datetime
    >>> deadline(datetime(2025, 1, 1, 8, 0), 24)
    datetime.datetime(2025, 1, 2, 8, 0)
    >>> deadline(datetime(2025, 1, 1, 8, 0), 0) is None
    True
    """
    return since + timedelta(hours=hours) if hours else None


def time_left(expires, now):
    """The time before *expires*, as a person reads it in a queue.

    >>> from datetime import datetime
    >>> now = datetime(2025, 1, 1, 8, 0)
    >>> time_left(datetime(2025, 1, 2, 7, 55), now)
    '23 h 55 min'
    >>> time_left(datetime(2025, 1, 4, 9, 0), now)
    '3 d 1 h'
    >>> time_left(datetime(2025, 1, 1, 8, 0, 30), now)
    'less than a minute'
    >>> time_left(datetime(2025, 1, 1, 7, 0), now)
    'overdue: expires at the next check'
    >>> time_left(None, now)
    'never expires'
    """
    if expires is None:
        return "never expires"
    seconds = (expires - now).total_seconds()
    if seconds <= 0:
        return "overdue: expires at the next check"
    minutes = int(seconds // 60)
    if minutes < 1:
        return "less than a minute"
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"


def approvals_required(severity, critical_approvers=1):
    """How many distinct people must approve a run of *severity*.

    >>> approvals_required("critical", 2), approvals_required("high", 2)
    (2, 1)
    >>> approvals_required("critical", 3)
    Traceback (most recent call last):
    ...
    engine.approval.ApprovalError: critical fixes need 1 or 2 approvers, not 3
    """
    if severity not in SEVERITIES:
        raise ApprovalError(f"severity must be one of {', '.join(SEVERITIES)}, "
                            f"not {severity!r}")
    if critical_approvers not in (1, 2):
        raise ApprovalError(f"critical fixes need 1 or 2 approvers, not {critical_approvers!r}")
    return critical_approvers if severity == "critical" else 1


def refusal(approver, requesters, approvers, four_eyes, environment):
    """Why *approver* may not approve now, or ``""`` when they may.

    *requesters*: who planned, submitted or changed the request of the run;
    *approvers*: who already approved its current plan.
    """
    if approver in set(approvers or ()):
        return "you already approved this plan: a second, different person must approve it too"
    if four_eyes and approver in set(requesters or ()):
        return (f"{environment}: four eyes: you planned or submitted this fix run, so another "
                "Auto-Heal Manager must approve it")
    return ""
