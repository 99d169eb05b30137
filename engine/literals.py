"""Required literals: words every match of a regex must contain.

Without Hyperscan or RE2 (a stock Odoo virtualenv has neither), running each
pattern over every byte of a log costs a lot when a pattern starts with an
optional group or an alternation: Python's ``re`` then tries it at every
position. Instead, the matcher looks for a few plain words with ``bytes.find``
(memory speed) and runs the real regex only on the records around them.

:func:`required_literals` reads the regex's parse tree and returns a set of
literals such that any match contains at least one of them, or None when no
useful set exists (then the regex runs on the whole text, as before).

>>> required_literals(r"deadlock detected|DEADLOCK_DETECTED, maximum number of tries")
['DEADLOCK_DETECTED, maximum number of tries', 'deadlock detected']
>>> required_literals(r"(?:while parsing (?P<f>[^\\n]+?\\.xml):\\d+\\n)?"
...                   r"Since 17\\.0, the \\"attrs\\"")
['Since 17.0, the "attrs"']
>>> required_literals(r"Worker \\((?P<pid>\\d+)\\) timeout after (?P<s>\\d+)s")
[') timeout after ']
>>> required_literals(r"\\d+ (?:ERROR|CRITICAL)")
['CRITICAL', 'ERROR']
>>> required_literals(r"(?i)deadlock") is None   # case-blind: not a plain find
True
>>> required_literals(r"[a-z]+ x") is None       # nothing long enough to look for
True
"""

try:  # Python 3.11+
    from re import _constants as sre_constants
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover - Python 3.10, which Odoo 18 still supports
    import sre_constants
    import sre_parse

import re

#: Shorter literals hit too often to be worth a separate search.
MIN_LITERAL = 4
#: More alternatives than this: searching them all costs more than the regex.
#: bytes.find runs at memory speed, Python's re over a whole block at a few MB/s:
#: a pattern of 17 alternatives (access_denied) is still far cheaper found by words.
MAX_LITERALS = 64

_LITERAL = sre_constants.LITERAL
_SUBPATTERN = sre_constants.SUBPATTERN
_BRANCH = sre_constants.BRANCH
_REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT,
            getattr(sre_constants, "POSSESSIVE_REPEAT", None))
_ATOMIC = getattr(sre_constants, "ATOMIC_GROUP", None)
# Zero-width items: they neither add characters nor break a literal run.
_ZERO_WIDTH = (sre_constants.AT, sre_constants.ASSERT, sre_constants.ASSERT_NOT)


def _score(literals):
    """Prefer few, long literals: the shortest one decides how often we hit."""
    return (min(len(x) for x in literals), -len(literals))


def _best(candidates):
    candidates = [c for c in candidates if c]
    return max(candidates, key=_score) if candidates else None


def _sequence(items):
    """Necessary literals of a sequence: the best of its mandatory parts."""
    options, run = [], []
    for op, argument in items:
        if op is _LITERAL:
            run.append(chr(argument))
            continue
        if op in _ZERO_WIDTH:
            continue
        if run:
            options.append({"".join(run)})
            run = []
        options.append(_item(op, argument))
    if run:
        options.append({"".join(run)})
    return _best(options)


def _item(op, argument):
    if op is _SUBPATTERN:
        if argument[1] & re.IGNORECASE:  # flags the group turns on
            return None
        return _sequence(argument[-1])
    if op is _ATOMIC:
        return _sequence(argument)
    if op in _REPEATS:
        minimum, _, body = argument
        return _sequence(body) if minimum >= 1 else None
    if op is _BRANCH:
        union = set()
        for branch in argument[1]:
            found = _sequence(branch)
            if not found:
                return None
            union |= found
        return union
    return None


def required_literals(regex):
    """Sorted literals, one of which every match contains; None if none fit."""
    try:
        parsed = sre_parse.parse(regex)
    except re.error:
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    found = _sequence(list(parsed))
    if not found or len(found) > MAX_LITERALS or min(len(x) for x in found) < MIN_LITERAL:
        return None
    return sorted(found)
