"""Fix actions and the runner that executes them safely.

Importing this package registers every built-in action; see
:mod:`engine.actions.base` for the contract and :mod:`engine.actions.runner`
for the one way to run them.
"""

from .base import (  # noqa: F401
    ActionError,
    FixAction,
    Plan,
    Precondition,
    actions,
    get_action,
    register,
)
from .runner import Context, FixAttempt, execute, rollback_run  # noqa: F401
