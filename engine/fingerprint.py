"""Fingerprints: records that differ only in variable values make one incident.

A fingerprint is built from the pattern type, the database, the message with
its variable parts replaced by placeholders, the innermost exception of the
traceback (class and normalised message), and the pattern's chosen named
groups (for example the XML file a fix must edit).

>>> normalize("Worker (31337) virtual memory limit (2147483648) reached.")
'Worker (<n>) virtual memory limit (<n>) reached.'
>>> normalize("_read_file reading /var/lib/odoo/filestore/prod/3f/3f2a9c1d88e0")
'_read_file reading <filestore>'
>>> normalize("Invalid field 'numbercall' on model 'ir.cron'")
'Invalid field <str> on model <str>'
>>> normalize('127.0.0.1 - - [29/Nov/2026 14:40:19] "GET /web HTTP/1.1" 200 - 3 0.002 0.010')
'<ip> - - [<ts>] <str> <n> - <n> <n> <n>'
>>> normalize("session 6f1c2a8e-9b7d-4c3e-8a1f-0d2e3c4b5a69 at 0x7f3a2b1c")
'session <uuid> at <hex>'
"""

import functools
import hashlib
import re

_RULES = (
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "<ts>"),
    (re.compile(r"\d\d?/[A-Z][a-z]{2}/\d{4}[ :]\d\d:\d\d:\d\d(?: [+-]\d{4})?"), "<ts>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"(?:/[^\s'\"`/]+)*/filestore/[^\s'\"`,;)]+"), "<filestore>"),
    (re.compile(r"'[^'\n]{0,500}'|\"[^\"\n]{0,500}\"|`[^`\n]{0,500}`"), "<str>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"),
     "<hex>"),
    (re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?\b"), "<n>"),
    (re.compile(r"\s+"), " "),
)

_MAX_SIGNATURE_PART = 300

_TRACEBACK = "Traceback (most recent call last):"
_EXCEPTION_LINE = re.compile(r"^(?P<cls>[A-Za-z_][\w.]*)(?::\s?(?P<msg>.*))?$")
_UNINDENTED = re.compile(r"\n(?=[^ \t\n])")


_DIGIT = re.compile(r"\d")
_ODD_SPACE = re.compile(r"[^\S ]|  ")  # what \s+ -> " " would change
(_TS, _CLF_TS, _UUID, _FILESTORE, _STR, _IP, _HEX, _NUMBER, _SPACE) = (r for r, _ in _RULES)


@functools.lru_cache(maxsize=4096)  # the same messages come back again and again
def normalize(text):
    """Replace the variable parts of *text* by placeholders.

    The rules of ``_RULES`` in order; a rule is skipped when the text lacks
    a character every match of it needs (most messages have no quote, no
    slash, no timestamp), which gives the same result for less work.
    """
    if ":" in text and "-" in text:
        text = _TS.sub("<ts>", text)
    if "/" in text and ":" in text:
        text = _CLF_TS.sub("<ts>", text)
    if "-" in text:
        text = _UUID.sub("<uuid>", text)
    if "/filestore/" in text:
        text = _FILESTORE.sub("<filestore>", text)
    if "'" in text or '"' in text or "`" in text:
        text = _STR.sub("<str>", text)
    if "." in text and _DIGIT.search(text):
        text = _IP.sub("<ip>", text)
    if _DIGIT.search(text):
        text = _HEX.sub("<hex>", text)
        if _DIGIT.search(text):
            text = _NUMBER.sub("<n>", text)
    if _ODD_SPACE.search(text):
        text = _SPACE.sub(" ", text)
    return text.strip()[:_MAX_SIGNATURE_PART]


def _normalize_by_every_rule(text):
    """The reference :func:`normalize` is checked against (tests)."""
    for regex, placeholder in _RULES:
        text = regex.sub(placeholder, text)
    return text.strip()[:_MAX_SIGNATURE_PART]


def innermost_exception(text):
    """The first exception of the first traceback in *text*: (class, message).

    Python prints a chain of exceptions innermost first ("The above exception
    was the direct cause of the following exception"), so the first exception
    line after the first ``Traceback`` header is the real cause.

    >>> innermost_exception('''x
    ... Traceback (most recent call last):
    ...   File "a.py", line 1, in f
    ...     raise ValueError("Invalid field 'doall' on model 'ir.cron'")
    ... ValueError: Invalid field 'doall' on model 'ir.cron'
    ...
    ... The above exception was the direct cause of the following exception:
    ...
    ... Traceback (most recent call last):
    ... odoo.tools.convert.ParseError: while parsing /a.xml:3''')
    ('ValueError', "Invalid field 'doall' on model 'ir.cron'")
    >>> innermost_exception("no traceback here") is None
    True
    """
    start = text.find(_TRACEBACK)
    if start < 0:
        return None
    position = start + len(_TRACEBACK)
    if position < len(text) and text[position] != "\n":
        # The rest of the header line counts as a line of its own.
        end = text.find("\n", position + 1)
        line = text[position:end if end >= 0 else len(text)]
        if line.strip() and line[0] not in " \t":
            return _exception(line)
        position = end if end >= 0 else len(text)
    while True:  # the first line after it that is not indented nor blank
        found = _UNINDENTED.search(text, position)
        if found is None:
            return None
        begin = found.end()
        end = text.find("\n", begin)
        line = text[begin:end if end >= 0 else len(text)]
        if line.strip():
            return _exception(line)
        position = end if end >= 0 else len(text)


def _exception(line):
    match = _EXCEPTION_LINE.match(line)
    if match:
        return match["cls"], (match["msg"] or "").strip()
    return None


#: Text that differs only in the digits 1-9 normalizes alike wherever the
#: rules replace those digits (every rule reads digits as \\d, and the one
#: literal digit, the 0 of 0x, is kept). So a normalized text with no digit
#: 1-9 left is cached under this cheap translation of its input. A text with
#: no "x" cannot hold 0x, so there the 0 joins the other digits.
_SHAPE = str.maketrans("123456789", "111111111")
_SHAPE_ALL = str.maketrans("0123456789", "1111111111")
_NONZERO_DIGIT = re.compile(r"[1-9]")
_ANY_DIGIT = re.compile(r"[0-9]")
#: What a quoted string becomes in a shape (a private-use character; a text
#: that holds it keeps its strings).
_HOLE = "\ue000"
_MAX_CACHED = 1 << 13  # entries per cache: a few MB at most
_by_shape = {}
_by_parts = {}


def shape(text):
    """The cache key of *text*: its digits 1-9 all made 1.

    >>> shape("Worker (31337) limit (2147483648) at 0x7f3a")
    'Worker (11111) limit (1111111111) at 0x1f1a'
    """
    return text.translate(_SHAPE)


def shape_key(text):
    """``(kind, shape)``: texts with one key normalize alike (see _normalize_shaped).

    Quoted strings become one hole when every quote of the text is part of one:
    the rules that run before the string rule (timestamps, UUIDs, filestore
    paths) never match a quote, so they only shorten a string, which the
    string rule then replaces whole, whatever was in it. Digits become 1,
    the 0 too when the text has no "x".

    >>> shape_key("Invalid field 'x_1' on model 'res.partner' (id 30)")
    (3, 'Invalid field \ue000 on model \ue000 (id 11)')
    >>> shape_key("Invalid field 'x_1' on 'model") == shape_key("Invalid field 'y_2' on 'model")
    False
    """
    kind = 0
    if ("'" in text or '"' in text or "`" in text) and _HOLE not in text:
        holes = _STR.sub(_HOLE, text)
        if "'" not in holes and '"' not in holes and "`" not in holes:
            text, kind = holes, 1
    if "x" in text:
        return kind, text.translate(_SHAPE)
    return kind | 2, text.translate(_SHAPE_ALL)


def _normalize_shaped(text):
    key = shape_key(text)
    found = _by_shape.get(key)
    if found is None:
        found = normalize(text)
        if (_ANY_DIGIT if key[0] & 2 else _NONZERO_DIGIT).search(found):
            return found  # digits survived: only the exact text shares this result
        if len(_by_shape) >= _MAX_CACHED:
            _by_shape.clear()
        _by_shape[key] = found
    return found


def cached_fingerprint(pattern_type, message, *, database=None, exception=None, fields=None):
    """:func:`fingerprint`, normalizing once per shape of the message.

    Records that differ only in volatile numbers (pids, ids, durations) share
    one shape, so a log of thousands of such records normalizes each shape
    once; a number the rules keep (``request.1395``) keeps its records apart.

    >>> a = cached_fingerprint("db_deadlock", "UPDATE x SET a=1 WHERE id=7", database="prod")
    >>> a == cached_fingerprint("db_deadlock", "UPDATE x SET a=2 WHERE id=9", database="prod")
    True
    >>> a == fingerprint("db_deadlock", "UPDATE x SET a=1 WHERE id=7", database="prod")
    True
    >>> (cached_fingerprint("x", "request.1395 failed")
    ...  == cached_fingerprint("x", "request.1396 failed"))
    False
    """
    normalized = _normalize_shaped(message)
    exc = None
    if exception:
        cls, exc_message = exception
        exc = f"{cls}: {_normalize_shaped(exc_message)}" if exc_message else cls
    key = (pattern_type, database, normalized, exc,
           tuple(sorted(fields.items())) if fields else ())
    found = _by_parts.get(key)
    if found is None:
        parts = [pattern_type, database or "-", normalized]
        if exc:
            parts.append(exc)
        for name, value in key[4]:
            parts.append(f"{name}={value}")
        signature = " | ".join(parts)
        digest = hashlib.sha1(signature.encode("utf-8", "replace")).hexdigest()[:16]
        if len(_by_parts) >= _MAX_CACHED:
            _by_parts.clear()
        found = _by_parts[key] = (digest, signature)
    return found


def fingerprint(pattern_type, message, *, database=None, exception=None, fields=None):
    """Return ``(fingerprint, signature)``; the signature is what was hashed.

    >>> a = fingerprint("db_deadlock", "bad query: UPDATE x SET a=1 WHERE id=7",
    ...                 database="prod")
    >>> b = fingerprint("db_deadlock", "bad query: UPDATE x SET a=2 WHERE id=9",
    ...                 database="prod")
    >>> a == b, len(a[0])
    (True, 16)
    >>> a[1]
    'db_deadlock | prod | bad query: UPDATE x SET a=<n> WHERE id=<n>'
    >>> fingerprint("db_deadlock", "x", database="other")[0] == a[0]
    False
    """
    parts = [pattern_type, database or "-", normalize(message)]
    if exception:
        cls, exc_message = exception
        parts.append(f"{cls}: {normalize(exc_message)}" if exc_message else cls)
    for name, value in sorted((fields or {}).items()):
        parts.append(f"{name}={value}")
    signature = " | ".join(parts)
    digest = hashlib.sha1(signature.encode("utf-8", "replace")).hexdigest()[:16]
    return digest, signature
