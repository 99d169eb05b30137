"""Errors the engine raises on bad input.

Each carries a one-line message meant for a person: the CLI prints it as
``auto-heal: error: <message>`` and the addon stores it on the record it
concerns (a log source, a pattern).
"""


class EngineError(Exception):
    """Base class: bad input or an unusable resource, never a bug."""


class LogSourceError(EngineError):
    """A log file that is missing, unreadable or not a regular file."""


class PatternError(EngineError):
    """One pattern that cannot be used; names the pattern and the field.

    >>> str(PatternError("db_deadlock", "regex", "unbalanced parenthesis"))
    "pattern 'db_deadlock': regex: unbalanced parenthesis"
    """

    def __init__(self, pattern_type, field, reason):
        self.pattern_type = pattern_type
        self.field = field
        self.reason = reason
        super().__init__(f"pattern {pattern_type!r}: {field}: {reason}")
