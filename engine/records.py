"""Odoo log records: the header line and the lines that belong to it.

Odoo writes ``YYYY-MM-DD HH:MM:SS,mmm PID LEVEL DBNAME LOGGER: message``.
Lines that do not start a record (a traceback, the XML context of a
ParseError) belong to the record before them. Text before the first record,
such as a bare traceback printed to stderr before logging was set up, is a
*raw* record: it has no level, pid or logger.

>>> raw = (b"2026-11-29 14:40:22,045 5681 CRITICAL probe18 odoo.service.server: "
...        b"Failed to initialize database `probe18`.\\n"
...        b"Traceback (most recent call last):\\n"
...        b"ValueError: Invalid field 'numbercall' on model 'ir.cron'\\n")
>>> rec = parse_record(raw, path="odoo.log", line=18, offset=2500)
>>> rec.level, rec.pid, rec.database, rec.logger
('CRITICAL', 5681, 'probe18', 'odoo.service.server')
>>> rec.message
'Failed to initialize database `probe18`.'
>>> rec.timestamp
datetime.datetime(2026, 11, 29, 14, 40, 22, 45000)
>>> rec.text.count("\\n")
2

Journal and syslog prefixes (``journalctl -u odoo`` output) are accepted:

>>> rec = parse_record(b"Nov 29 14:40:22 web1 odoo[5681]: 2026-11-29 14:40:22,045 "
...                    b"5681 INFO ? odoo: Odoo version 18.0 ")
>>> rec.level, rec.database, rec.message
('INFO', None, 'Odoo version 18.0')

Anything else is raw text, and undecodable bytes never stop the reader:

>>> rec = parse_record(b"OSError: [Errno 98] Address already in use\\n\\xff\\x00junk")
>>> rec.level is None, rec.message
(True, 'OSError: [Errno 98] Address already in use')
>>> "\\x00" in rec.text
False
"""

import bisect
import re
from dataclasses import dataclass
from datetime import datetime

# Optional prefix a collector puts before every line: the journal's or
# syslog's "Nov 29 14:40:22 host odoo[123]: ", docker compose's "odoo_1  | ",
# a container console's own date and time glued to the line ("6/11/2020 14:26:06").
_JOURNAL = rb"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ (?P<program>[^\s:\[]+)(?:\[\d+\])?: "
_DOCKER = rb"[A-Za-z0-9][\w.-]* +\| ?"
_CONSOLE = rb"\d{1,2}/\d{1,2}/\d{4} \d\d:\d\d:\d\d"
_PREFIX = rb"(?P<prefix>" + _JOURNAL + rb"|" + _DOCKER + rb"|" + _CONSOLE + rb")?"
_LINE_PREFIX = re.compile(rb"^(?:" + _JOURNAL + rb"|" + _DOCKER + rb"|" + _CONSOLE + rb")")
_STAMP = rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \d+ [A-Z_]+ "
# A header whose timestamp was cut off when it was pasted: "[PID ]LEVEL DB LOGGER: ".
_CUT = rb"(?:\d+ )?(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ [\w.]+: "

#: Matches (with ``.match(data, pos)``) when a record header starts at pos.
HEADER_START = re.compile(_PREFIX + rb"(?:" + _STAMP + rb"|" + _CUT + rb")")

_HEADER = re.compile(
    _PREFIX
    + rb"(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (?P<pid>\d+) (?P<level>[A-Z_]+) "
    rb"(?P<db>\S+) (?P<logger>[^\s:]+):? ?(?P<msg>[^\n]*)"
)
# The watchdog's own log has no database: "... 812 WARNING auto_heal.watchdog: msg".
_HEADER_NO_DB = re.compile(
    _PREFIX
    + rb"(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (?P<pid>\d+) (?P<level>[A-Z_]+) "
    rb"(?P<logger>[\w.]+): ?(?P<msg>[^\n]*)"
)
_HEADER_CUT = re.compile(
    _PREFIX
    + rb"(?:(?P<pid>\d+) )?(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<db>\S+) "
    rb"(?P<logger>[\w.]+): ?(?P<msg>[^\n]*)"
)

#: A record longer than this keeps its head and tail only: a multi-megabyte
#: line must not make one record cost unbounded memory.
MAX_RECORD_BYTES = 1 << 20
_HEAD_KEEP = 768 << 10
_TAIL_KEEP = 192 << 10

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

#: What Python's re may search in one record: patterns are checked to never
#: backtrack exponentially (engine.linear), and at most quadratically, so a
#: bound on the text bounds the time. Longer lines keep their head, longer
#: records their head and tail.
REGEX_LINE_CHARS = 8 << 10
REGEX_TEXT_CHARS = 64 << 10
_REGEX_HEAD = 48 << 10
_REGEX_TAIL = REGEX_TEXT_CHARS - _REGEX_HEAD

#: The start of the line after a record: a newline and a header.
_NEXT_HEADER = re.compile(b"\n(?=" + _PREFIX + b"(?:" + _STAMP + b"|" + _CUT + b"))")


@dataclass(slots=True)
class Record:
    """One log record: its header fields, full text and where it was read."""

    text: str
    message: str
    path: str = ""
    line: int = 0
    offset: int = 0
    timestamp: datetime | None = None
    pid: int | None = None
    level: str | None = None
    database: str | None = None
    logger: str | None = None
    program: str | None = None
    prefix: str | None = None

    @property
    def is_raw(self):
        """True for text that is not an Odoo record (stderr, foreign lines)."""
        return self.level is None


def decode(raw):
    """Bytes to text that any consumer (PostgreSQL included) accepts.

    >>> decode(b"caf\\xc3\\xa9 \\xff\\x00")
    'café \\ufffd\\ufffd'
    """
    return raw.decode("utf-8", "replace").replace("\x00", "\ufffd")


def _cap(raw):
    if len(raw) <= MAX_RECORD_BYTES:
        return raw
    return record_bytes(raw, 0, len(raw))


def record_bytes(data, start, end):
    """``data[start:end]``, its middle left out past MAX_RECORD_BYTES, without
    ever copying the whole record.

    >>> record_bytes(b"abc", 1, 3)
    b'bc'
    """
    if end - start <= MAX_RECORD_BYTES:
        return data[start:end]
    omitted = end - start - _HEAD_KEEP - _TAIL_KEEP
    return b"%s\n[... %d bytes omitted ...]\n%s" % (
        data[start:start + _HEAD_KEEP], omitted, data[end - _TAIL_KEEP:end])


def parse_timestamp(stamp):
    """Odoo's ``2026-11-29 14:40:22,045`` as a naive datetime (Odoo logs UTC).

    >>> parse_timestamp("2026-11-29 14:40:22,045")
    datetime.datetime(2026, 11, 29, 14, 40, 22, 45000)
    >>> parse_timestamp("2026-13-45 99:00:00,000") is None
    True
    """
    try:  # slicing is ten times faster than strptime on this fixed format
        return datetime(int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10]), int(stamp[11:13]),
                        int(stamp[14:16]), int(stamp[17:19]), int(stamp[20:23]) * 1000)
    except ValueError:
        return None


def _strip_prefixes(text):
    """*text* without the collector prefix its lines carry, when its first line has one.

    >>> print(_strip_prefixes("odoo_1  | Traceback (most recent call last):\\n"
    ...                       "odoo_1  |   File \\"x.py\\", line 1\\nodoo_1  | MemoryError"))
    Traceback (most recent call last):
      File "x.py", line 1
    MemoryError
    >>> print(_strip_prefixes("6/11/2020 14:26:06Traceback (most recent call last):\\n"
    ...                       "6/11/2020 14:26:06  File \\"x.py\\", line 1"))
    Traceback (most recent call last):
      File "x.py", line 1
    """
    lines = text.split("\n")
    if not _LINE_PREFIX.match(lines[0].encode("utf-8", "replace")):
        return text
    stripped = []
    for line in lines:
        raw = line.encode("utf-8", "replace")
        match = _LINE_PREFIX.match(raw)
        stripped.append(decode(raw[match.end():]) if match else line)
    return "\n".join(stripped)


_seconds = {}  # "2026-11-29 14:40:22" -> datetime: records share their second


def _timestamp(stamp):
    second = _seconds.get(stamp[:19])
    if second is None:
        second = parse_timestamp(stamp[:19] + ",000")
        if second is None:
            return None
        if len(_seconds) > 4096:
            _seconds.clear()
        _seconds[stamp[:19]] = second
    return second.replace(microsecond=int(stamp[20:23]) * 1000)


def parse_record(raw, path="", line=0, offset=0):
    """Build a :class:`Record` from the bytes of one record.

    A header whose timestamp was cut off still gives level, database and
    logger; collector prefixes (journal, docker compose) are taken off every
    line, so patterns see Odoo's own text:

    >>> rec = parse_record(b"odoo_1  | 2019-03-16 15:15:25,900 54 ERROR ? werkzeug: Error:\\n"
    ...                    b"odoo_1  | Traceback (most recent call last):\\n"
    ...                    b"odoo_1  | OSError: [Errno 98] Address already in use")
    >>> rec.level, rec.logger, rec.text.splitlines()[-1]
    ('ERROR', 'werkzeug', 'OSError: [Errno 98] Address already in use')
    >>> rec = parse_record(b"28774 INFO ? odoo.modules.graph: module x: Unmet dependencies: y")
    >>> rec.pid, rec.level, rec.database, rec.logger, rec.timestamp, rec.message
    (28774, 'INFO', None, 'odoo.modules.graph', None, 'module x: Unmet dependencies: y')
    >>> rec = parse_record(b"2026-11-29 14:40:22,045 812 WARNING auto_heal.watchdog: odoo is down")
    >>> rec.database, rec.logger, rec.message
    (None, 'auto_heal.watchdog', 'odoo is down')
    """
    raw = _cap(raw)
    text = decode(raw).rstrip("\n")
    first, _, _ = text.partition("\n")
    first_raw = first.encode("utf-8", "replace")
    header = _HEADER.match(first_raw)
    if header and header["db"].endswith(b":"):
        header = _HEADER_NO_DB.match(first_raw)
    if not header:
        header = _HEADER_CUT.match(first_raw)
    if not header:
        prefix = _LINE_PREFIX.match(first_raw)
        program = decode(prefix["program"]) if prefix and prefix["program"] else None
        text = _strip_prefixes(text)
        first, _, _ = text.partition("\n")
        return Record(text=text, message=first.strip(), path=path, line=line, offset=offset,
                      program=program, prefix=decode(prefix.group(0)) if prefix else None)
    fields = {k: decode(v) if v is not None else None for k, v in header.groupdict().items()}
    if fields["prefix"]:
        text = _strip_prefixes(text)
    database = fields.get("db")
    stamp = fields.get("ts")
    return Record(
        text=text,
        message=fields["msg"].strip(),
        path=path,
        line=line,
        offset=offset,
        timestamp=(_timestamp(stamp) if stamp and len(stamp) >= 23 else
                   parse_timestamp(stamp) if stamp else None),
        pid=int(fields["pid"]) if fields.get("pid") else None,
        level=fields["level"],
        database=None if database in (None, "?") else database,
        logger=fields["logger"],
        program=fields.get("program"),
        prefix=fields["prefix"],
    )


def _cut_lines(text, limit):
    if len(text) <= limit:
        return text
    lines = text.split("\n")
    if max(map(len, lines)) <= limit:
        return text
    return "\n".join(line[:limit] for line in lines)


def regex_view(text):
    """The part of a record's *text* patterns search (see REGEX_TEXT_CHARS).

    >>> view = regex_view("x" * 20000 + "\\nend")
    >>> len(view), view.endswith("\\nend")
    (8196, True)
    >>> regex_view("short") == "short"
    True
    """
    if len(text) <= REGEX_LINE_CHARS:
        return text
    if len(text) > REGEX_TEXT_CHARS:
        text = text[:_REGEX_HEAD] + "\n" + text[-_REGEX_TAIL:]
    return _cut_lines(text, REGEX_LINE_CHARS)


class LineCappedView:
    """Bytes with every line cut to REGEX_LINE_CHARS, and the way back to offsets.

    >>> view = LineCappedView(b"a\\n" + b"b" * 9000 + b"\\nc\\n")
    >>> len(view.data), view.offset(view.data.index(b"c"))
    (8197, 9003)
    """

    def __init__(self, data, limit=REGEX_LINE_CHARS):
        self.data, self._starts = data, None
        lines = data.split(b"\n")
        if max(map(len, lines)) <= limit:
            return
        view_starts, data_starts, view_at, data_at = [], [], 0, 0
        for line in lines:
            view_starts.append(view_at)
            data_starts.append(data_at)
            view_at += min(len(line), limit) + 1
            data_at += len(line) + 1
        self.data = b"\n".join(line[:limit] for line in lines)
        self._starts = (view_starts, data_starts)

    def offset(self, view_offset):
        """The offset in the original bytes of *view_offset*."""
        if self._starts is None:
            return view_offset
        view_starts, data_starts = self._starts
        line = bisect.bisect_right(view_starts, view_offset) - 1
        return data_starts[line] + view_offset - view_starts[line]


def record_start(data, pos, floor=0, max_lines=64):
    """Start of the record holding byte *pos*: its header line, *floor* at the least.

    *floor* is a record boundary (the end of the record before, or the start
    of *data*), so the walk back never passes it: a header is searched line by
    line for *max_lines* lines, then forward from *floor*, so the cost stays
    linear in the distance however long the record is.

    >>> data = (b"2026-11-29 14:40:22,044 1 ERROR db a: x\\n"
    ...         b"2026-11-29 14:40:22,045 1 CRITICAL db b: y\\nTraceback\\n  z\\n")
    >>> record_start(data, data.index(b"  z"))
    40
    """
    start = data.rfind(b"\n", floor, pos) + 1
    if start < floor:
        start = floor
    for _ in range(max_lines):
        if start <= floor or HEADER_START.match(data, start):
            return max(start, floor)
        start = data.rfind(b"\n", floor, start - 1) + 1
    last = floor
    for match in _NEXT_HEADER.finditer(data, floor, pos):
        last = match.start() + 1
    return last


def record_end(data, pos):
    """End of the record holding byte *pos*: the start of the next header line.

    >>> data = (b"2026-11-29 14:40:22,045 1 ERROR db b: y\\nTraceback\\n  z\\n"
    ...         b"2026-11-29 14:40:23,000 1 INFO db c: w\\n")
    >>> data[:record_end(data, 3)].endswith(b"  z\\n")
    True
    """
    found = _NEXT_HEADER.search(data, pos)
    return found.start() + 1 if found else len(data)


def record_bounds(data, pos, max_lines=5000):
    """Start and end of the record that holds byte *pos* of *data*.

    *data* starts at a record boundary. A record starts at a header line and
    runs to the next header line. Walks are bounded by *max_lines* so that a
    huge run of non-record text costs at most that many lines per hit.

    >>> data = (b"2026-11-29 14:40:22,044 1 ERROR db a: x\\n"
    ...         b"2026-11-29 14:40:22,045 1 CRITICAL db b: y\\nTraceback\\n  z\\n"
    ...         b"2026-11-29 14:40:22,050 1 INFO db c: w\\n")
    >>> s, e = record_bounds(data, data.index(b"  z"))
    >>> data[s:e].splitlines()[1:]
    [b'Traceback', b'  z']
    """
    start = data.rfind(b"\n", 0, pos) + 1
    for _ in range(max_lines):
        if start == 0 or HEADER_START.match(data, start):
            break
        start = data.rfind(b"\n", 0, start - 1) + 1
    end = pos
    for _ in range(max_lines):
        newline = data.find(b"\n", end)
        if newline < 0:
            end = len(data)
            break
        end = newline + 1
        if end >= len(data) or HEADER_START.match(data, end):
            break
    return start, end
