"""Policy: which fix runs need a person's approval, and when a pattern is demoted.

The decision is pure, like :mod:`engine.budget`: the addon passes the
environment and the rules from Settings, the incident's severity and the
pattern's auto-fix flag; nothing here reads a database or a file::

    pattern auto_fix false (or demoted) ───────────────────────> approval
    else: rules[severity] (Settings) or the environment default ─> auto | approval

Defaults per environment (a rule set in Settings wins over them):

============  =====  ========  ========  ========
environment   low    medium    high      critical
============  =====  ========  ========  ========
dev           auto   auto      auto      auto
staging       auto   auto      approval  approval
prod          auto   approval  approval  approval
============  =====  ========  ========  ========

>>> needs_approval("prod", "high", True, {})
(True, 'prod: high severity needs approval (default for prod)')
>>> needs_approval("prod", "low", True, {})
(False, 'prod: low severity may be fixed automatically (default for prod)')
>>> needs_approval("dev", "critical", True, {"critical": "approval"})
(True, 'dev: critical severity needs approval (set in Settings)')
>>> needs_approval("dev", "low", False, {})
(True, 'the pattern does not allow automatic fixes (auto_fix is off)')
"""

from .errors import EngineError
from .patterns import SEVERITIES

ENVIRONMENTS = ("dev", "staging", "prod")
AUTO = "auto"
APPROVAL = "approval"
#: The value of a Settings rule that defers to the environment's default.
DEFAULT = "default"
MODES = (AUTO, APPROVAL)

DEFAULT_RULES = {
    "dev": dict.fromkeys(SEVERITIES, AUTO),
    "staging": {"low": AUTO, "medium": AUTO, "high": APPROVAL, "critical": APPROVAL},
    "prod": {"low": AUTO, "medium": APPROVAL, "high": APPROVAL, "critical": APPROVAL},
}

#: Consecutive failed automatic runs after which a pattern is demoted.
DEFAULT_DEMOTION_THRESHOLD = 3
#: Run states that count as a failed fix (refused and blocked runs end as failed).
FAILED_STATES = ("failed", "rolled_back")


class PolicyError(EngineError):
    """An environment, severity or rule the policy does not know."""


def _check(environment, severity):
    if environment not in ENVIRONMENTS:
        raise PolicyError(f"environment must be one of {', '.join(ENVIRONMENTS)}, "
                          f"not {environment!r}")
    if severity not in SEVERITIES:
        raise PolicyError(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")


def effective_rules(environment, rules=None):
    """The mode of each severity: the environment's defaults, then *rules* over them.

    Values ``None``, ``""`` and ``"default"`` in *rules* keep the default.

    >>> effective_rules("staging", {"medium": "approval", "low": "default"})
    {'low': 'auto', 'medium': 'approval', 'high': 'approval', 'critical': 'approval'}
    >>> effective_rules("prod", {"high": "sometimes"})
    Traceback (most recent call last):
    ...
    engine.policy.PolicyError: rule for high must be one of auto, approval, default, not 'sometimes'
    """
    if environment not in ENVIRONMENTS:
        raise PolicyError(f"environment must be one of {', '.join(ENVIRONMENTS)}, "
                          f"not {environment!r}")
    result = dict(DEFAULT_RULES[environment])
    for severity, mode in (rules or {}).items():
        if severity not in SEVERITIES:
            raise PolicyError(f"rule for an unknown severity {severity!r}")
        if mode in (None, "", DEFAULT):
            continue
        if mode not in MODES:
            raise PolicyError(f"rule for {severity} must be one of {', '.join(MODES)}, "
                              f"{DEFAULT}, not {mode!r}")
        result[severity] = mode
    return result


def needs_approval(environment, severity, pattern_auto_fix, rules=None, *, demoted=False):
    """Whether a fix run needs a person's approval, and why, as ``(bool, reason)``.

    A pattern with auto_fix false always needs approval, whatever the
    environment; so does a pattern demoted after repeated failures:

    >>> needs_approval("dev", "low", True, {}, demoted=True)
    (True, 'the pattern was demoted after repeated failed automatic fixes')
    >>> needs_approval("staging", "medium", True, None)
    (False, 'staging: medium severity may be fixed automatically (default for staging)')
    >>> needs_approval("prod", "medium", True, {"medium": "auto"})
    (False, 'prod: medium severity may be fixed automatically (set in Settings)')
    >>> needs_approval("qa", "low", True, {})
    Traceback (most recent call last):
    ...
    engine.policy.PolicyError: environment must be one of dev, staging, prod, not 'qa'
    """
    _check(environment, severity)
    modes = effective_rules(environment, rules)
    if not pattern_auto_fix:
        return True, "the pattern does not allow automatic fixes (auto_fix is off)"
    if demoted:
        return True, "the pattern was demoted after repeated failed automatic fixes"
    from_settings = (rules or {}).get(severity) not in (None, "", DEFAULT)
    origin = "set in Settings" if from_settings else f"default for {environment}"
    if modes[severity] == APPROVAL:
        return True, f"{environment}: {severity} severity needs approval ({origin})"
    return False, f"{environment}: {severity} severity may be fixed automatically ({origin})"


def consecutive_failures(states):
    """How many runs failed in a row at the end of *states* (oldest first).

    >>> consecutive_failures(["done", "failed", "rolled_back", "failed"])
    3
    >>> consecutive_failures(["failed", "done"])
    0
    """
    count = 0
    for state in reversed(list(states)):
        if state not in FAILED_STATES:
            break
        count += 1
    return count


def should_demote(states, threshold=DEFAULT_DEMOTION_THRESHOLD):
    """Whether the automatic fix of a pattern is demoted to "approval required".

    *states* are the end states of the pattern's automatic runs, oldest first.
    Like Odoo 18 switching off a cron after repeated failures, ``threshold``
    failures in a row demote it; a success in between starts the count again.

    >>> should_demote(["failed", "failed"], threshold=3)
    False
    >>> should_demote(["failed", "rolled_back", "failed"], threshold=3)
    True
    >>> should_demote(["failed", "failed", "done", "failed"], threshold=3)
    False
    >>> should_demote([], threshold=0)
    Traceback (most recent call last):
    ...
    engine.policy.PolicyError: the demotion threshold must be at least 1, not 0
    """
    if threshold < 1:
        raise PolicyError(f"the demotion threshold must be at least 1, not {threshold}")
    return consecutive_failures(states) >= threshold
