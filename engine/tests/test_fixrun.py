"""The fix run's state machine (engine/fixrun.py) is whole and closed."""

import pytest

from engine import fixrun
from engine.actions.runner import ATTEMPT_STATES


def test_every_state_has_its_moves_and_every_move_ends_in_a_state():
    codes = [code for code, _label in fixrun.STATES]
    assert sorted(fixrun.TRANSITIONS) == sorted(codes)
    for moves in fixrun.TRANSITIONS.values():
        assert set(moves.values()) <= set(codes)


def test_every_state_is_reachable_from_draft():
    seen, todo = {"draft"}, ["draft"]
    while todo:
        for target in fixrun.TRANSITIONS[todo.pop()].values():
            if target not in seen:
                seen.add(target)
                todo.append(target)
    assert seen == {code for code, _label in fixrun.STATES}


def test_only_open_states_lead_anywhere_but_a_rollback():
    for state, moves in fixrun.TRANSITIONS.items():
        if state not in fixrun.OPEN_STATES:
            assert set(moves) <= {"roll_back"}, state


def test_every_outcome_of_the_runner_moves_a_running_run():
    for attempt_state in ATTEMPT_STATES:
        for escalated in (False, True):
            verb = fixrun.attempt_verb(attempt_state, escalated)
            assert fixrun.next_state("running", verb) in fixrun.TRANSITIONS


@pytest.mark.parametrize("state, verb, message", [
    ("expired", "approve", "a fix run that is expired cannot approve; it is final"),
    ("draft", "fly", "'fly' is not a fix-run verb"),
    ("gone", "approve", "a fix run cannot be in the state 'gone'"),
])
def test_a_move_the_table_does_not_hold_is_a_clear_error(state, verb, message):
    with pytest.raises(fixrun.TransitionError) as caught:
        fixrun.next_state(state, verb)
    assert str(caught.value).startswith(message)
