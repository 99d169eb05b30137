"""``detect``: scan Odoo logs against the pattern database and print incidents."""

import json
import re
import signal
import sys
import time

from engine.secrets import mask_secrets, mask_values
from host.output import json_safe, terminal_safe
from host.state import State, StateLock

from .base import (
    EXIT_ATTENTION,
    EXIT_OK,
    HELP_FORMAT,
    SEVERITIES,
    check_readable,
    default_dir,
    load_patterns,
    non_negative_float,
    positive_float,
    warning,
)

_SEV_RANK = {s: i for i, s in enumerate(SEVERITIES)}

DETECT_EPILOG = """\
Prints one block per incident: pattern type, severity, count, first and last
seen, source file:line, captures (for cron_field_deprecated the XML file and
line) and a masked sample. With --json:
  {"incidents": [{"pattern", "severity", "count", "fingerprint", "first_seen",
   "last_seen", "sample", "source": {"path", "line"}, "captures", ...}],
   "bytes_scanned": N}
(with --follow, one such JSON object per line and per round).

--state FILE keeps a cursor per log: each run reports only what was written
since the last one (a record still being written is left for the next run,
see --settle). Without --state every run scans the whole files.

exit codes: 0 no incident (at or above --min-severity), 1 incidents found,
2 bad input, 3 internal error. --follow exits 0 on Ctrl-C.
"""


def register(sub):
    p = sub.add_parser(
        "detect",
        help="scan Odoo logs and print incidents",
        formatter_class=HELP_FORMAT,
        description="Scan Odoo log files against the pattern database and print incidents.",
        epilog=DETECT_EPILOG,
    )
    p.add_argument(
        "--log",
        metavar="FILE",
        action="append",
        required=True,
        help="an Odoo log file (repeat for several)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--state", metavar="FILE", help="remember cursors in FILE and report only new findings"
    )
    p.add_argument(
        "--patterns",
        metavar="FILE",
        help="patterns file (default: $AUTO_HEAL_PATTERNS, else data/patterns.json of auto_heal)",
    )
    p.add_argument(
        "--follow",
        metavar="SECONDS",
        type=positive_float,
        help="rescan every SECONDS and print new incidents until Ctrl-C",
    )
    p.add_argument(
        "--min-severity",
        choices=SEVERITIES,
        default="low",
        help="report only incidents at or above this severity (default: low)",
    )
    p.add_argument(
        "--settle",
        metavar="SECONDS",
        type=non_negative_float,
        default=10.0,
        help="incremental scans (--state, --follow) leave a last record that "
        "changed less than SECONDS ago for the next scan (default: 10)",
    )
    p.set_defaults(func=run)



def _iso(value):
    return value or "-"


def _print_incident_text(incident, out):
    out = _SafeWriter(out, terminal_safe)
    d = incident.to_dict()
    out.write("[%s] %s  count=%d\n" % (d["severity"], d["pattern"], d["count"]))
    out.write("  first seen: %s   last seen: %s\n" % (_iso(d["first_seen"]), _iso(d["last_seen"])))
    out.write("  source: %s:%s\n" % (d["source"]["path"], d["source"]["line"]))
    if d.get("message"):
        out.write("  message: %s\n" % mask_secrets(d["message"].split("\n")[0][:300]))
    if d["captures"]:
        out.write(
            "  captures: %s\n"
            % " ".join(
                "%s=%s" % (k, mask_secrets(str(v))) for k, v in sorted(d["captures"].items())
            )
        )
    lines = mask_secrets(d["sample"] or "").split("\n")
    shown = _sample_lines(lines)
    out.write("  sample:\n")
    for line in shown:
        out.write("    | %s\n" % line[:300])
    if len(lines) > len(shown):
        out.write(
            "    | ... (%d more lines; --json shows the whole sample)\n" % (len(lines) - len(shown))
        )
    out.write("\n")


class _SafeWriter:
    """A stream whose writes pass through *clean* (log text never drives the terminal)."""

    def __init__(self, stream, clean):
        self.stream, self.clean = stream, clean

    def write(self, text):
        return self.stream.write(self.clean(text))


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Warning|Exit|Failure)\b.*")


def _sample_lines(lines, limit=6):
    """A few lines of a sample: its first line, then the exception lines.

    >>> sample = ["2026 ... CRITICAL db x: Failed", "Traceback", "  File a", "ValueError: bad",
    ...           "", "odoo.tools.convert.ParseError: while parsing /a.xml:3"]
    >>> for line in _sample_lines(sample, limit=3):
    ...     print(line)
    2026 ... CRITICAL db x: Failed
    ValueError: bad
    odoo.tools.convert.ParseError: while parsing /a.xml:3
    """
    if len(lines) <= limit:
        return lines
    picked = [lines[0]] + [line for line in lines[1:] if _EXCEPTION_LINE.match(line)]
    if len(picked) == 1:
        return lines[:limit]
    return picked[:1] + picked[1:][-(limit - 1) :]


def _select(incidents, min_severity):
    floor = _SEV_RANK[min_severity]
    chosen = [i for i in incidents if _SEV_RANK.get(i.severity, len(SEVERITIES)) >= floor]
    order = {id(i): n for n, i in enumerate(chosen)}
    chosen.sort(key=lambda i: (-_SEV_RANK.get(i.severity, 0), order[id(i)]))
    return chosen


#: Seconds ``detect --state`` waits for another run holding the same state file.
STATE_LOCK_WAIT = 30.0


class _Detector:
    """Scan a set of logs, with cursors kept in memory (and in --state)."""

    def __init__(self, args):
        from engine.scanner import Scanner

        self.args = args
        self.logs = list(dict.fromkeys(args.log))
        for path in self.logs:
            check_readable(path)
        self.state = None
        if args.state:
            self.state = State.load(args.state)
        self.incremental = bool(args.state or args.follow)
        self.missing = set()
        self.cursors = {}
        if self.state:
            for path in self.logs:
                self.cursors[path] = self.state.cursor(path)
        from engine.matcher import prepare_cache_dir

        # The compiled pattern database is kept in the state folder's cache/.
        self.scanner = Scanner(load_patterns(args.patterns),
                               cache_dir=prepare_cache_dir(default_dir("cache")))

    def scan(self, tolerate_missing=False):

        if self.state is None:
            return self._scan(tolerate_missing)
        # one detect at a time per state file: cursors read, scanned and saved under
        # the lock, so two runs never report the same records or lose an update
        lock = StateLock(self.args.state).acquire(timeout=STATE_LOCK_WAIT,
                                                  who="another auto-heal")
        try:
            self.state = State.load(self.args.state)
            for path in self.logs:
                self.cursors[path] = self.state.cursor(path)
            return self._scan(tolerate_missing)
        finally:
            lock.release()

    def _scan(self, tolerate_missing):
        from engine.errors import LogSourceError

        incidents, scanned = {}, 0
        for path in self.logs:
            try:
                result = self.scanner.scan_file(
                    path,
                    self.cursors.get(path),
                    final=not self.incremental,
                    settle_seconds=self.args.settle,
                    incidents=incidents,  # folded as found: memory stays flat
                )
            except LogSourceError as exc:
                if not tolerate_missing:
                    raise
                if path not in self.missing:  # say it once, not every round
                    self.missing.add(path)
                    warning(str(exc))
                continue
            self.missing.discard(path)
            for message in result.warnings:
                warning("%s: %s" % (path, message))
            self.cursors[path] = result.cursor
            scanned += result.bytes_scanned
        if self.state is not None:
            for path, cursor in self.cursors.items():
                self.state.set_cursor(path, cursor)
            self.state.save()
        return _select(list(incidents.values()), self.args.min_severity), scanned

    def report(self, incidents, scanned, out, follow=False, quiet_if_empty=False):
        if self.args.json:
            if quiet_if_empty and not incidents:
                return
            if follow:
                doc = _json_incident({"incidents": [i.to_dict() for i in incidents],
                                      "bytes_scanned": scanned})
                out.write(json.dumps(doc, ensure_ascii=False, sort_keys=False) + "\n")
            else:
                _write_json_report(incidents, scanned, out)
        else:
            for incident in incidents:
                _print_incident_text(incident, out)
            if not quiet_if_empty or incidents:
                total = sum(i.count for i in incidents)
                if incidents:
                    out.write(
                        "%d incident(s), %d finding(s), %d bytes scanned\n"
                        % (len(incidents), total, scanned)
                    )
                else:
                    out.write("no incidents, %d bytes scanned\n" % scanned)
        out.flush()


def _json_incident(data):
    """What --json prints of an incident: secrets masked, valid UTF-8."""
    return json_safe(mask_values(data))


def _write_json_report(incidents, scanned, out):
    """``json.dumps({"incidents": [...], "bytes_scanned": n}, indent=2)``, written
    one incident at a time so that a large report never sits in memory twice.

    >>> import io
    >>> class Incident:
    ...     def to_dict(self):
    ...         return {"pattern": "x", "captures": {"a": "b"}}
    >>> out = io.StringIO()
    >>> _write_json_report([Incident(), Incident()], 7, out)
    >>> doc = {"incidents": [Incident().to_dict()] * 2, "bytes_scanned": 7}
    >>> out.getvalue() == json.dumps(doc, indent=2, ensure_ascii=False) + chr(10)
    True
    """
    if not incidents:
        out.write(json.dumps({"incidents": [], "bytes_scanned": scanned}, indent=2) + "\n")
        return
    out.write('{\n  "incidents": [\n')
    for number, incident in enumerate(incidents):
        text = json.dumps(_json_incident(incident.to_dict()), indent=2, ensure_ascii=False)
        # JSON strings hold no raw newline: every newline is the encoder's.
        out.write("    " + text.replace("\n", "\n    "))
        out.write(",\n" if number < len(incidents) - 1 else "\n")
    out.write('  ],\n  "bytes_scanned": %s\n}\n' % json.dumps(scanned))


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run(args):
    if args.follow:
        # Ctrl-C and systemd's SIGTERM both end --follow cleanly (exit 0), also while
        # the first scan runs. A shell starts background jobs with SIGINT ignored:
        # restore it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        detector = _Detector(args)
        incidents, scanned = detector.scan()
        detector.report(incidents, scanned, sys.stdout, follow=bool(args.follow))
    except KeyboardInterrupt:
        if args.follow:
            return EXIT_OK
        raise
    if not args.follow:
        return EXIT_ATTENTION if incidents else EXIT_OK
    try:
        while True:
            time.sleep(args.follow)
            incidents, scanned = detector.scan(tolerate_missing=True)
            detector.report(incidents, scanned, sys.stdout, follow=True, quiet_if_empty=True)
    except KeyboardInterrupt:
        return EXIT_OK

