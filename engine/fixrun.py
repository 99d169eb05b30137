"""The fix run's state machine: its states, the verbs that move it, the runner's outcomes.

A fix run (``auto_heal.fix.run`` in the addon) is one request to run a fix
action for an incident. Each time it runs, the runner makes one
:class:`engine.actions.runner.FixAttempt`; what the attempt ended in moves the
run on (:func:`attempt_verb`). Only the verbs below move a run, and the model
asks :func:`next_state` for every move, so a move the table does not hold is
refused with a clear error instead of being written::

                 queue                approve (enough distinct approvers)
    draft ────────────────> pending ───────────────────────────────────> approved
      │ ^   approve_by_policy  │ ^ │ replan (stays pending)                │   │
      │ │ ─────────────────────┼─┼─┼───────────────────────────────────────> │   │ start
      │ │                      │ │ └ expire ──> expired   go_stale (claim:   │   v
      │ └── replan_failed ─────┤ │                        request changed)   │ running
      │                        │ └──── replan / approve ── stale <───────────┘   │ │ │ │
      │                        │   receive_host_plan (the host planned) <────────┘ │ │ │
      │                        │                          stale <── go_stale ──────┘ │ │
      │ reject, cancel         │ reject, cancel                                      │ │
      v                        v                         approved <── retry_later ───┘ │
    rejected, cancelled                                                                │
                                     done | failed | rolled_back <── succeed, fail, ───┘
                                      │                                roll_back_itself
                                      └── roll_back ──> rolled_back

``pending`` and ``stale`` wait for a person (:data:`WAITING_STATES`); from
them a run may also expire, be rejected or be cancelled. ``approved`` may
still be rejected or cancelled before it starts. The terminal states take no
verb, except that a done run may be rolled back by hand.

>>> next_state("draft", "queue")
'pending'
>>> next_state("pending", "approve")
'approved'
>>> next_state("running", attempt_verb("noop"))
'done'
>>> next_state("running", attempt_verb("refused", escalated=False))
'approved'
>>> next_state("expired", "approve")
Traceback (most recent call last):
...
engine.fixrun.TransitionError: a fix run that is expired cannot approve; it is final
>>> next_state("done", "start")
Traceback (most recent call last):
...
engine.fixrun.TransitionError: a fix run that is done cannot start; from done it can: roll_back
>>> sorted(verb for verb in TRANSITIONS["running"])  # doctest: +NORMALIZE_WHITESPACE
['fail', 'go_stale', 'receive_host_plan', 'retry_later', 'roll_back_itself', 'succeed']
"""

from .errors import EngineError

#: Every state of a fix run with its label, in the order the backend shows them.
STATES = (
    ("draft", "Draft"),
    ("pending", "Waiting Approval"),
    ("stale", "Plan Changed"),
    ("approved", "Approved"),
    ("running", "Running"),
    ("done", "Done"),
    ("failed", "Failed"),
    ("rolled_back", "Rolled Back"),
    ("rejected", "Rejected"),
    ("cancelled", "Cancelled"),
    ("expired", "Expired"),
)
#: States of a run that may still change something: never two of them per incident and action.
OPEN_STATES = ("draft", "pending", "stale", "approved", "running")
#: States in which a run waits for a person's approval.
WAITING_STATES = ("pending", "stale")
#: Runs that changed (or tried to change) their target: they count against its budget.
BUDGET_STATES = ("done", "failed", "rolled_back")
#: States a finished attempt leaves a run in.
FINISHED_STATES = ("done", "failed", "rolled_back")

_NEVER_RAN = {"reject": "rejected", "cancel": "cancelled"}
_WAITING = dict(_NEVER_RAN, approve="approved", replan="pending", replan_failed="draft",
                expire="expired")

#: state -> {verb: the state it moves the run to}.
TRANSITIONS = {
    "draft": dict(_NEVER_RAN, queue="pending", approve_by_policy="approved",
                  take_over="running"),
    "pending": dict(_WAITING, take_over="running"),
    "stale": dict(_WAITING, take_over="running"),
    "approved": dict(_NEVER_RAN, start="running", go_stale="stale", take_over="running"),
    "running": {"succeed": "done", "fail": "failed", "roll_back_itself": "rolled_back",
                "retry_later": "approved", "go_stale": "stale",
                "receive_host_plan": "pending"},
    "done": {"roll_back": "rolled_back"},
    "failed": {},
    "rolled_back": {},
    "rejected": {},
    "cancelled": {},
    "expired": {},
}
VERBS = tuple(sorted({verb for moves in TRANSITIONS.values() for verb in moves}))

#: What an attempt ended in (the runner's states) -> the verb that moves the run.
_ATTEMPT_VERBS = {
    "done": "succeed",
    "noop": "succeed",  # nothing to change: the goal holds
    "failed": "fail",
    "blocked": "fail",  # a precondition or the plan refused it
    "planned": "fail",  # the attempt stopped after planning: nothing was run
    "rolled_back": "roll_back_itself",  # its own verification failed and it undid itself
    "stale": "go_stale",  # the plan differs from the approved one: nothing was changed
}


class TransitionError(EngineError, ValueError):
    """A verb that does not apply to a fix run in its current state."""


def next_state(state, verb):
    """The state *verb* moves a run in *state* to, or :class:`TransitionError`."""
    if state not in TRANSITIONS:
        raise TransitionError(f"a fix run cannot be in the state {state!r}")
    if verb not in VERBS:
        raise TransitionError(f"{verb!r} is not a fix-run verb (known: {', '.join(VERBS)})")
    moves = TRANSITIONS[state]
    if verb not in moves:
        where = (f"from {state} it can: {', '.join(sorted(moves))}" if moves
                 else "it is final")
        raise TransitionError(f"a fix run that is {state} cannot {verb}; {where}")
    return moves[verb]


def attempt_verb(attempt_state, escalated=False):
    """The verb for what one attempt of a run ended in.

    A ``refused`` attempt (over its budget) waits for its growing delay and
    runs again, unless the budget escalated it: then it fails. A state the
    runner should never give fails the run rather than leave it running.

    >>> attempt_verb("refused", escalated=True), attempt_verb("blocked"), attempt_verb("?")
    ('fail', 'fail', 'fail')
    """
    if attempt_state == "refused":
        return "fail" if escalated else "retry_later"
    return _ATTEMPT_VERBS.get(attempt_state, "fail")


def handed_over_state(attempt_state):
    """The final state of a run a watchdog did on its own and handed over afterwards.

    Such a run is a record, created closed (never a second open run): it takes
    the attempt's outcome directly, and an attempt that did not finish is a
    failure to report.

    >>> handed_over_state("noop"), handed_over_state("rolled_back"), handed_over_state("refused")
    ('done', 'rolled_back', 'failed')
    """
    state = TRANSITIONS["running"].get(attempt_verb(attempt_state, escalated=True))
    return state if state in FINISHED_STATES else "failed"
