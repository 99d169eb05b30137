"""Budgets: no action loops (safety rule 5).

Each fix action and target may run at most ``max_runs`` times within
``window`` seconds, with a growing delay between two runs. Over budget, a run
is refused with a reason and the incident is escalated to a person; this is
systemd's ``StartLimitBurst``/``StartLimitIntervalSec`` plus ``RestartSteps``::

    run 1 ──30s──> run 2 ──60s──> run 3 ──> refused, escalated
    |<──────────────── window (30 min) ───────────────>|

The decision is pure: the caller passes the start times of earlier runs (the
watchdog keeps them in its state file, the addon reads its fix runs).

>>> policy = BudgetPolicy(max_runs=3, window=1800, first_delay=30, max_delay=600)
>>> decide(policy, [], now=1000).allowed
True
>>> d = decide(policy, [990], now=1000)      # 10 s after the first run
>>> d.allowed, d.wait, d.escalate
(False, 20.0, False)
>>> decide(policy, [900], now=1000).allowed  # 100 s later: the 30 s delay is over
True
>>> d = decide(policy, [100, 400, 900], now=1000)
>>> d.allowed, d.escalate
(False, True)
>>> print(d.reason)
budget used up: 3 runs within 30 min (the limit is 3); a person must look at it
>>> decide(policy, [100, 400, 900], now=2000).allowed   # the first run left the window
True
"""

from dataclasses import dataclass

from .errors import EngineError


class BudgetError(EngineError):
    """A budget policy that makes no sense."""


@dataclass(frozen=True)
class BudgetPolicy:
    """At most *max_runs* within *window* seconds; delays double from *first_delay*."""

    max_runs: int = 3
    window: float = 1800.0
    first_delay: float = 30.0
    factor: float = 2.0
    max_delay: float = 600.0

    def __post_init__(self):
        if self.max_runs < 1:
            raise BudgetError("max_runs must be at least 1")
        if self.window <= 0 or self.first_delay < 0 or self.factor < 1 or self.max_delay < 0:
            raise BudgetError("window must be > 0, delays >= 0 and factor >= 1")

    def delay_after(self, runs):
        """Seconds to wait after the last of *runs* earlier runs (0 for none).

        >>> [BudgetPolicy(first_delay=10, factor=2, max_delay=60).delay_after(n)
        ...  for n in range(6)]
        [0.0, 10.0, 20.0, 40.0, 60.0, 60.0]
        """
        if runs <= 0:
            return 0.0
        return float(min(self.first_delay * self.factor ** (runs - 1), self.max_delay))


@dataclass(frozen=True)
class BudgetDecision:
    allowed: bool
    reason: str = ""
    wait: float = 0.0
    escalate: bool = False
    runs_in_window: int = 0


def _minutes(seconds):
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def decide(policy, history, now):
    """May one more run start at *now*, given the start times in *history*?"""
    recent = sorted(t for t in history if now - t < policy.window)
    if len(recent) >= policy.max_runs:
        return BudgetDecision(
            allowed=False, escalate=True, runs_in_window=len(recent),
            wait=max(0.0, recent[-policy.max_runs] + policy.window - now),
            reason=(f"budget used up: {len(recent)} runs within {_minutes(policy.window)} "
                    f"(the limit is {policy.max_runs}); a person must look at it"))
    delay = policy.delay_after(len(recent))
    if recent and now - recent[-1] < delay:
        wait = round(recent[-1] + delay - now, 3)
        return BudgetDecision(
            allowed=False, wait=wait, runs_in_window=len(recent),
            reason=(f"too soon: run {len(recent) + 1} waits {_minutes(delay)} after the "
                    f"previous one; {wait:g} s left"))
    return BudgetDecision(allowed=True, runs_in_window=len(recent))
