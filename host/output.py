"""What ``bin/auto-heal`` prints: valid UTF-8, no terminal control from log text.

Log lines are written by anyone. Printed as they are, an escape sequence in
one could rewrite the operator's terminal (move the cursor, retitle the
window, hide a line); a path of non-UTF-8 bytes would make ``--json`` invalid.

>>> terminal_safe("ok \\x1b[2J\\x1b]0;pwned\\x07 done\\tend")
'ok \\\\x1b[2J\\\\x1b]0;pwned\\\\x07 done\\tend'
>>> json_safe({"path": "/var/log/\\udcffodoo.log", "n": [1, "\\x9b"]})
{'path': '/var/log/\\\\xffodoo.log', 'n': [1, '\\x9b']}
"""

import re

# C0 controls but tab and newline, DEL, and the C1 controls (ESC's 8-bit twins)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# lone surrogates: bytes that were not UTF-8 (os.fsdecode's surrogateescape)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match):
    char = match.group(0)
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape of one byte
        return "\\x%02x" % (code - 0xDC00)
    return "\\x%02x" % code if code < 0x100 else "\\u%04x" % code


def terminal_safe(text):
    """*text* with control characters (but tab and newline) shown as ``\\xNN``."""
    text = _SURROGATE.sub(_escape, str(text))
    return _CONTROL.sub(_escape, text)


def json_safe(value):
    """*value* (JSON-able) with every string valid UTF-8 (lone surrogates as ``\\xNN``).

    Control characters stay: JSON escapes them itself.
    """
    if isinstance(value, str):
        return _SURROGATE.sub(_escape, value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
