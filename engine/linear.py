"""Which regexes may run at all: linear-time engines only (readme/PATTERNS.md).

Patterns come from people with less power than the scanner (Auto-Heal
Managers edit them in Odoo), and log text comes from anyone. One pattern such
as ``(a+)+$`` on a line of 34 ``a`` and a ``b`` takes Python's backtracking
``re`` hours. So a pattern is accepted only when

1. its syntax is one the linear-time engines take (RE2, hyperscan): no
   back-references, look-arounds, conditionals, atomic groups or possessive
   repeats; and
2. it cannot backtrack exponentially, so that Python's ``re`` (which gives the
   named groups, and is the only engine of a stock Odoo virtualenv) stays
   within a bound on the text it is given (see ``engine.records``).

Rule 2 is decided on the parse tree, without running anything: the regex
becomes a position automaton in which each transition counts the distinct
ways the regex can take it (so ``(a+)+`` has two ways from ``a`` to ``a``).
The regex backtracks exponentially exactly when some position can loop back
to itself along two different paths that read the same text (infinite
"degree of ambiguity", Weber & Seidl); that is a strongly connected component
of the automaton squared holding both a pair ``(p, p)`` and a point where the
two paths part. Characters are grouped into 128 ASCII symbols and one symbol
for everything else, which can only make the check stricter.

>>> check_linear(r"(a+)+$")
Traceback (most recent call last):
...
engine.linear.NotLinear: nested repeats can match the same text in many ways, so a \
backtracking engine may take exponential time; write the repeat once (for example a+ \
instead of (a+)+)
>>> check_linear(r"(?<=x)y")
Traceback (most recent call last):
...
engine.linear.NotLinear: look-arounds are not supported by linear-time engines (RE2, hyperscan)
>>> check_linear(r"Invalid field '(?P<f>\\w+)'(?:\\n[^\\n]*)*?\\nwhile parsing")
>>> check_linear(r"(?:\\w+\\s?)*$")
Traceback (most recent call last):
...
engine.linear.NotLinear: nested repeats can match the same text in many ways, so a \
backtracking engine may take exponential time; write the repeat once (for example a+ \
instead of (a+)+)
"""

import functools
import re
import threading

try:  # Python 3.11+
    from re import _constants as sre_constants
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants
    import sre_parse

#: A bounded repeat up to this many copies is analysed exactly; a larger one
#: as if it were unbounded (stricter, never laxer).
MAX_EXPANDED = 16
#: Regexes with more positions than this are refused: the check must stay cheap.
MAX_POSITIONS = 2000
#: States the polynomial check may visit before it gives up (and refuses).
MAX_STATES = 200_000
#: Loops in a row that may read the same text. Two (quadratic, as in
#: ``[^']*/filestore/[^']+``) are allowed: the text Python's re sees per
#: record is bounded (engine.records.REGEX_TEXT_BYTES); three are not.
MAX_DEGREE = 2

_OTHER = 128  # the symbol for every non-ASCII character the regex does not name
_ASCII_DIGITS = sum(1 << c for c in range(ord("0"), ord("9") + 1))
_ASCII_WORD = _ASCII_DIGITS | (1 << ord("_")) | sum(
    1 << c for c in range(128) if chr(c).isalpha())
_ASCII_SPACE = sum(1 << c for c in range(128) if chr(c).isspace())


class _Alphabet:
    """The symbols of one regex: the 128 ASCII characters, one for every non-ASCII
    character the regex names (a curly quote, an accented letter), and one for
    all the others. Naming them apart keeps ``[^“]*“`` as precise as ``[^"]*"``."""

    def __init__(self, codes=()):
        self.codes = {code: 129 + n for n, code in enumerate(sorted(set(codes)))}
        self.all = (1 << (129 + len(self.codes))) - 1

    def symbol(self, code):
        return code if code < 128 else self.codes.get(code, _OTHER)

    def named(self, test):
        """The mask of the named non-ASCII characters for which *test* holds."""
        return sum(1 << bit for code, bit in self.codes.items() if test(chr(code)))

    def category(self, name):
        digit = _ASCII_DIGITS | self.named(lambda c: c.isdigit()) | 1 << _OTHER
        word = _ASCII_WORD | self.named(lambda c: c.isalnum() or c == "_") | 1 << _OTHER
        space = _ASCII_SPACE | self.named(str.isspace) | 1 << _OTHER
        table = {"CATEGORY_DIGIT": digit, "CATEGORY_WORD": word, "CATEGORY_SPACE": space,
                 "CATEGORY_LINEBREAK": 1 << 10 | 1 << _OTHER}
        if name in table:
            return table[name]
        positive = table.get(name.replace("_NOT_", "_"))
        if positive is None:
            return self.all
        # the complement, with every non-ASCII character it may hold
        return (self.all & ~positive) | 1 << _OTHER | (
            self.named(lambda c: True) & ~(positive & ~(1 << _OTHER)))


_alphabet = _Alphabet()
_alphabet_lock = threading.Lock()


def _named_codes(items):
    """Every non-ASCII code point a parsed regex names (literals, classes, ranges)."""
    codes = []
    for op, argument in items:
        name = str(op)
        if name in ("LITERAL", "NOT_LITERAL") and argument >= 128:
            codes.append(argument)
        elif name == "IN":
            for inner_op, inner in argument:
                if str(inner_op) == "LITERAL" and inner >= 128:
                    codes.append(inner)
                elif str(inner_op) == "RANGE":
                    codes.extend(c for c in inner if c >= 128)
        elif name == "SUBPATTERN":
            codes.extend(_named_codes(argument[3]))
        elif name == "BRANCH":
            for branch in argument[1]:
                codes.extend(_named_codes(branch))
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            codes.extend(_named_codes(argument[2]))
        if len(codes) > 256:
            break
    return codes[:256]


_NEWLINE = 1 << 10


class NotLinear(ValueError):
    """The regex may not run: the message says why, in one line."""


_UNSUPPORTED = {
    "GROUPREF": "back-references",
    "GROUPREF_EXISTS": "conditional groups",
    "GROUPREF_IGNORE": "back-references",
    "GROUPREF_UNI_IGNORE": "back-references",
    "GROUPREF_LOC_IGNORE": "back-references",
    "ASSERT": "look-arounds",
    "ASSERT_NOT": "look-arounds",
    "ATOMIC_GROUP": "atomic groups",
    "POSSESSIVE_REPEAT": "possessive repeats",
}

_POLYNOMIAL = ("three or more repeats in a row can match the same text, so a "
               "backtracking engine may take time in a high power of the text's length "
               "(for example .*a.*a.*a); make the repeats exclude what follows them (for "
               "example [^a]*a)")
_EXPONENTIAL = ("nested repeats can match the same text in many ways, so a backtracking "
                "engine may take exponential time; write the repeat once (for example a+ "
                "instead of (a+)+)")


def _char(code, ignore_case):
    symbol = _alphabet.symbol
    mask = 1 << symbol(code)
    if ignore_case:
        char = chr(code)
        for other in (char.lower(), char.upper()):
            if len(other) == 1:
                mask |= 1 << symbol(ord(other))
        if code >= 128 or char.lower() in "ks":  # K (Kelvin), ſ fold onto ASCII
            mask |= 1 << _OTHER
    return mask


def _class(items, ignore_case):
    mask, negate = 0, False
    for op, argument in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            mask |= _char(argument, ignore_case)
        elif name == "RANGE":
            low, high = argument
            for code in range(low, min(high, 127) + 1):
                mask |= _char(code, ignore_case)
            if high >= 128:
                mask |= 1 << _OTHER | _alphabet.named(
                    lambda c, low=low, high=high: low <= ord(c) <= high)
        elif name == "CATEGORY":
            mask |= _alphabet.category(str(argument))
        else:  # anything unknown: assume it can be any character
            mask |= _alphabet.all
    if negate:
        mask = (_alphabet.all & ~mask) | 1 << _OTHER
    return mask


class _Automaton:
    """Positions (one per character test), with counted follow transitions."""

    def __init__(self):
        self.masks = []      # position -> character mask
        self.follow = []     # position -> {position: ways (1 or 2)}

    def position(self, mask):
        self.masks.append(mask)
        self.follow.append({})
        if len(self.masks) > MAX_POSITIONS:
            raise NotLinear(f"too large to check (more than {MAX_POSITIONS} character tests)")
        return len(self.masks) - 1

    def link(self, lasts, firsts):
        for last, ways_last in lasts.items():
            targets = self.follow[last]
            for first, ways_first in firsts.items():
                targets[first] = min(2, targets.get(first, 0) + ways_last * ways_first)


def _add(counts, other, times=1):
    for key, value in other.items():
        counts[key] = min(2, counts.get(key, 0) + value * times)
    return counts


class _Fragment:
    """first / last positions with their number of ways, and ways to match empty."""

    __slots__ = ("first", "last", "empty")

    def __init__(self, first=None, last=None, empty=0):
        self.first = first or {}
        self.last = last or {}
        self.empty = empty


def _sequence(automaton, fragments):
    result = _Fragment(empty=1)
    for fragment in fragments:
        automaton.link(result.last, fragment.first)
        first = dict(result.first)
        if result.empty:
            _add(first, fragment.first, result.empty)
        last = _add({}, fragment.last)
        if fragment.empty:
            _add(last, result.last, fragment.empty)
        result = _Fragment(first, last, min(2, result.empty * fragment.empty))
    return result


def _star(automaton, fragment):
    """``fragment*``: every last may go on to every first once more."""
    automaton.link(fragment.last, fragment.first)
    return _Fragment(dict(fragment.first), dict(fragment.last), min(2, 1 + fragment.empty))


def _build(automaton, items, flags):
    parts = []
    ignore_case = bool(flags & re.IGNORECASE)
    for op, argument in items:
        name = str(op)
        if name in _UNSUPPORTED:
            raise NotLinear(f"{_UNSUPPORTED[name]} are not supported by linear-time engines "
                            "(RE2, hyperscan)")
        if name == "LITERAL":
            parts.append(_atom(automaton, _char(argument, ignore_case)))
        elif name == "NOT_LITERAL":
            parts.append(_atom(automaton, (_alphabet.all & ~_char(argument, ignore_case))
                               | 1 << _OTHER))
        elif name == "ANY":
            everything = _alphabet.all
            parts.append(_atom(automaton, everything if flags & re.DOTALL
                               else everything & ~_NEWLINE))
        elif name == "IN":
            parts.append(_atom(automaton, _class(argument, ignore_case)))
        elif name == "AT":
            parts.append(_Fragment(empty=1))
        elif name == "SUBPATTERN":
            group, add_flags, del_flags, body = argument
            inner = (flags | add_flags) & ~del_flags
            parts.append(_build(automaton, body, inner))
        elif name == "BRANCH":
            alternatives = [_build(automaton, branch, flags) for branch in argument[1]]
            first, last, empty = {}, {}, 0
            for alternative in alternatives:
                _add(first, alternative.first)
                _add(last, alternative.last)
                empty = min(2, empty + alternative.empty)
            parts.append(_Fragment(first, last, empty))
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            parts.append(_repeat(automaton, argument, flags))
        else:
            raise NotLinear(f"uses {name.lower()}, which the check does not know")
    return _sequence(automaton, parts)


def _atom(automaton, mask):
    position = automaton.position(mask)
    return _Fragment({position: 1}, {position: 1}, 0)


def _repeat(automaton, argument, flags):
    low, high, body = argument
    unbounded = high == sre_constants.MAXREPEAT or high > MAX_EXPANDED
    copies = []
    for _ in range(min(low, MAX_EXPANDED)):
        copies.append(_build(automaton, body, flags))
    if unbounded:
        copies.append(_star(automaton, _build(automaton, body, flags)))
    else:
        for _ in range(high - min(low, MAX_EXPANDED)):
            optional = _build(automaton, body, flags)
            optional.empty = min(2, optional.empty + 1)
            copies.append(optional)
    if not copies:
        return _Fragment(empty=1)
    return _sequence(automaton, copies)


def _exponential(automaton):
    """True when two different same-text paths lead from a position back to it."""
    masks, follow = automaton.masks, automaton.follow
    # The automaton squared, restricted to what pairs (p, p) reach.
    edges = {}
    stack = [(p, p) for p in range(len(masks)) if follow[p]]
    seen = set(stack)
    while stack:
        node = stack.pop()
        p, q = node
        out = []
        for p2 in follow[p]:
            mask = masks[p2]
            for q2 in follow[q]:
                if mask & masks[q2]:
                    pair = (p2, q2) if p2 <= q2 else (q2, p2)
                    out.append(pair)
                    if pair not in seen:
                        seen.add(pair)
                        stack.append(pair)
        edges[node] = out
    doubled = {(p, q) for p in range(len(masks)) for q, ways in follow[p].items() if ways > 1}
    for component in _components(edges):
        diagonal = [p for p, q in component if p == q]
        if not diagonal:
            continue
        if any(p != q for p, q in component):
            return True
        members = set(diagonal)
        if any((p, q) in doubled for p in members for q in members):
            return True
    return False


def _reach(follow, start):
    seen, stack = {start}, [start]
    while stack:
        for nxt in follow[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _loops(automaton):
    """Position -> its loop (strongly connected component), for positions on one."""
    follow = automaton.follow
    edges = {p: list(targets) for p, targets in enumerate(follow)}
    owner = {}
    for number, component in enumerate(_components(edges)):
        for p in component:
            owner[p] = number
    return owner


def _degree(automaton):
    """How many loops in a row can read the same text: 1 + the longest chain.

    Loops p and q (q after p, not the same loop) are chained when one text
    leads p to p, p to q and q to q ("infinite degree of ambiguity"): each
    link multiplies a backtracking engine's work by the text's length. The
    text is searched in the automaton cubed, from (p, p, q) to (p, q, q), the
    first and last coordinates kept on their loops.
    """
    masks, follow = automaton.masks, automaton.follow
    owner = _loops(automaton)
    looping = sorted(owner)
    reach = {p: _reach(follow, p) for p in looping}
    budget = [MAX_STATES]
    chained = {p: [] for p in looping}
    for p in looping:
        for q in looping:
            if owner[p] == owner[q] or q not in reach[p]:
                continue
            if _same_text(masks, follow, owner, p, q, budget):
                chained[p].append(q)
    longest = {}
    def chain(p):
        if p not in longest:
            longest[p] = 1 + max((chain(q) for q in chained[p]), default=0)
        return longest[p]
    return max((chain(p) for p in looping), default=0)


def _same_text(masks, follow, owner, p, q, budget):
    loop_p, loop_q = owner[p], owner[q]
    start, goal = (p, p, q), (p, q, q)
    seen, stack = {start}, [start]
    while stack:
        a, b, c = stack.pop()
        for a2 in follow[a]:
            if owner.get(a2) != loop_p:
                continue
            mask_a = masks[a2]
            for b2 in follow[b]:
                mask_ab = mask_a & masks[b2]
                if not mask_ab:
                    continue
                for c2 in follow[c]:
                    if owner.get(c2) != loop_q or not mask_ab & masks[c2]:
                        continue
                    state = (a2, b2, c2)
                    if state == goal:
                        return True
                    if state not in seen:
                        budget[0] -= 1
                        if budget[0] < 0:
                            raise NotLinear("too complex to check; split it into simpler "
                                            "patterns")
                        seen.add(state)
                        stack.append(state)
    return False


def _components(edges):
    """Strongly connected components (iterative Tarjan) with more than a lone node."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges.get(child, ()))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                self_loop = node in edges.get(node, ())
                if len(component) > 1 or self_loop:
                    found.append(component)
    return found


@functools.lru_cache(maxsize=1024)
def check_linear(regex, flags=re.MULTILINE):
    """Raise :class:`NotLinear` unless *regex* may run (see the module docstring)."""
    try:
        parsed = sre_parse.parse(regex, flags)
    except re.error as exc:
        raise NotLinear(f"does not compile: {exc}") from None
    global _alphabet
    automaton = _Automaton()
    with _alphabet_lock:
        _alphabet = _Alphabet(_named_codes(list(parsed)))
        _build(automaton, list(parsed), parsed.state.flags)
    if _exponential(automaton):
        raise NotLinear(_EXPONENTIAL)
    if _degree(automaton) > MAX_DEGREE:
        raise NotLinear(_POLYNOMIAL)
