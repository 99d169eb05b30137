#!/usr/bin/env python3
"""Scanner throughput against GNU grep, measured in the same run on the same file.

    python bench/scan_bench.py [--size-mb 200] [--error-rate 0.005] [--repeat 3]

It writes a realistic Odoo 18 log (werkzeug request lines, cron jobs, mail
batches, a sprinkle of real failures with tracebacks), then times:

* the auto_heal scanner (one-shot scan: parse, prefilter, classify,
  fingerprint), once per prefilter backend available here;
* ``grep -E -c -f FILE`` with the same patterns translated to POSIX ERE (and
  the ERROR/CRITICAL header the scanner also watches), ``LC_ALL=C``.

It prints MB/s for each and the ratio scanner / grep. grep only counts
matching lines; the scanner also groups records, classifies them by innermost
cause and fingerprints them, so a ratio near 1 means that work is nearly free.
Best of --repeat runs, each after one warm read of the file (page cache).
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine import matcher as matcher_module  # noqa: E402
from engine.literals import sre_constants, sre_parse  # noqa: E402
from engine.patterns import load_patterns  # noqa: E402
from engine.scanner import DEFAULT_PATTERNS, Scanner  # noqa: E402

REQUESTS = [
    '"POST /web/dataset/call_kw/res.partner/web_search_read HTTP/1.1" 200 - {q} {t1} {t2}',
    '"POST /web/dataset/call_kw/sale.order/web_read HTTP/1.1" 200 - {q} {t1} {t2}',
    '"GET /web/image/res.partner/{id}/avatar_128 HTTP/1.1" 304 - {q} {t1} {t2}',
    '"POST /mail/data HTTP/1.1" 200 - {q} {t1} {t2}',
    '"GET /websocket?version=18.0-1 HTTP/1.1" 101 - {q} {t1} {t2}',
    '"POST /web/action/load HTTP/1.1" 200 - {q} {t1} {t2}',
]
ROUTINE = [
    "odoo.addons.base.models.ir_cron: Job 'Mail: Email Queue Manager' (3) starting",
    "odoo.addons.base.models.ir_cron: Job 'Mail: Email Queue Manager' (3) done in {t1}s",
    "odoo.addons.base.models.ir_cron: Job 'Base: Auto-vacuum internal data' (1) starting",
    "odoo.addons.mail.models.mail_mail: Sent batch {q} emails via mail server ID #1",
    "odoo.addons.base.models.res_users: Login successful for db:prod login:user{id} "
    "from 10.0.{q}.{q}",
    "odoo.modules.registry: Invalidating all model caches after database signaling.",
]
FAILURES = [
    ("ERROR", "odoo.sql_db: bad query: UPDATE \"stock_quant\" SET \"quantity\"={q} "
              "WHERE id IN ({id})\nERROR: deadlock detected\nDETAIL: Process {id} waits "
              "for ShareLock on transaction {id}; blocked by process {q}.\n"),
    ("INFO", "odoo.service.server: Worker ({id}) virtual memory limit (2.0 GiB) reached."),
    ("INFO", "odoo.addons.base.models.ir_attachment: _read_file reading "
             "/var/lib/odoo/filestore/prod/3f/3f2a9c1d88e0{id}\nTraceback (most recent call "
             "last):\n  File \"/srv/odoo/odoo/addons/base/models/ir_attachment.py\", line 137, "
             "in _file_read\nFileNotFoundError: [Errno 2] No such file or directory: "
             "'/var/lib/odoo/filestore/prod/3f/3f2a9c1d88e0{id}'"),
    ("ERROR", "odoo.http: Exception during request handling.\nTraceback (most recent call "
              "last):\n  File \"/srv/odoo/odoo/http.py\", line 2372, in __call__\n"
              "    response = request._serve_db()\nKeyError: 'x_studio_field_{q}'"),
    ("ERROR", "odoo.addons.base.models.ir_cron: Call from cron Inventory: reorder for "
              "server action #{q} failed in Job #{id}\nTraceback (most recent call last):\n"
              "  File \"/srv/odoo/odoo/addons/base/models/ir_cron.py\", line 565, in "
              "_callback\npsycopg2.errors.LockNotAvailable: could not obtain lock on row "
              "in relation \"stock_quant\""),
]


def generate(path, size, error_rate, seed=18):
    rng = random.Random(seed)
    written, second = 0, 0
    with open(path, "w") as handle:
        while written < size:
            second += rng.random() < 0.3
            stamp = f"2026-11-29 {second // 3600 % 24:02d}:{second // 60 % 60:02d}:" \
                    f"{second % 60:02d},{rng.randrange(1000):03d} {rng.randrange(1000, 9999)}"
            values = {"q": rng.randrange(1, 400), "id": rng.randrange(1, 10**6),
                      "t1": f"{rng.random():.3f}", "t2": f"{rng.random():.3f}"}
            roll = rng.random()
            if roll < error_rate:
                level, text = rng.choice(FAILURES)
                line = f"{stamp} {level} prod {text.format(**values)}\n"
            elif roll < 0.35:
                line = f"{stamp} INFO prod {rng.choice(ROUTINE).format(**values)}\n"
            else:
                request = rng.choice(REQUESTS).format(**values)
                line = (f"{stamp} INFO prod werkzeug: 10.0.0.{values['q'] % 250} - - "
                        f"[29/Nov/2026 10:00:00] {request}\n")
            handle.write(line)
            written += len(line)
    return written


_POSIX_CATEGORIES = {
    "CATEGORY_DIGIT": "[:digit:]", "CATEGORY_SPACE": "[:space:]",
    "CATEGORY_WORD": "[:alnum:]_",
}
_NEGATED_CATEGORIES = {
    "CATEGORY_NOT_DIGIT": "[^[:digit:]]", "CATEGORY_NOT_SPACE": "[^[:space:]]",
    "CATEGORY_NOT_WORD": "[^[:alnum:]_]",
}
_ERE_SPECIAL = set("\\.[](){}*+?|^$")


class _NoLineForm(Exception):
    """The construct needs a newline or look-around: grep -E cannot say it."""


def _ere_char(code):
    char = chr(code)
    if char == "\n":
        raise _NoLineForm
    return "\\" + char if char in _ERE_SPECIAL else char


def _ere_class(items):
    negate, parts = False, []
    for op, argument in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            if argument != 10:  # a line never holds a newline: [^\n] is [^]
                char = chr(argument)
                parts.append("\\" + char if char in "]^-\\" else char)
        elif name == "RANGE":
            parts.append(f"{chr(argument[0])}-{chr(argument[1])}")
        elif name == "CATEGORY" and str(argument) in _POSIX_CATEGORIES:
            parts.append(_POSIX_CATEGORIES[str(argument)])
        elif name == "CATEGORY" and str(argument) in _NEGATED_CATEGORIES and len(items) == 1:
            return _NEGATED_CATEGORIES[str(argument)]
        else:
            raise _NoLineForm
    if not parts:
        return "." if negate else None
    # POSIX bracket expressions take no backslash escapes: put ] first, - last.
    body = "".join(p.replace("\\]", "").replace("\\-", "").replace("\\^", "^")
                   .replace("\\\\", "\\") for p in parts)
    body = ("]" if any(p == "\\]" for p in parts) else "") + body
    body += "-" if any(p == "\\-" for p in parts) else ""
    return f"[{'^' if negate else ''}{body}]"


def _ere(items):
    out = []
    for op, argument in items:
        name = str(op)
        if name == "LITERAL":
            out.append(_ere_char(argument))
        elif name == "NOT_LITERAL":
            out.append("." if argument == 10 else f"[^{chr(argument)}]")
        elif name == "ANY":
            out.append(".")
        elif name == "IN":
            bracket = _ere_class(argument)
            if bracket is None:
                raise _NoLineForm
            out.append(bracket)
        elif name == "SUBPATTERN":
            out.append(f"({_ere(argument[-1])})")
        elif name == "BRANCH":
            branches = []
            for branch in argument[1]:
                try:
                    branches.append(_ere(branch))
                except _NoLineForm:
                    continue  # this alternative spans lines; the others still match
            if not branches:
                raise _NoLineForm
            out.append("(" + "|".join(branches) + ")")
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            low, high, body = argument
            try:
                inner = _ere(body)
            except _NoLineForm:
                if low == 0:
                    continue  # an optional multi-line part: the line still matches
                raise
            high_text = "" if high == sre_constants.MAXREPEAT else str(high)
            quantifier = {(0, ""): "*", (1, ""): "+", (0, "1"): "?"}.get(
                (low, high_text), f"{{{low},{high_text}}}")
            out.append(f"({inner}){quantifier}")
        elif name == "AT" and str(argument) in ("AT_BEGINNING", "AT_BEGINNING_LINE"):
            out.append("^")
        elif name == "AT" and str(argument) in ("AT_END", "AT_END_LINE"):
            out.append("$")
        elif name == "AT" and str(argument) == "AT_BOUNDARY":
            out.append("\\b")
        else:
            raise _NoLineForm
    return "".join(out)


def to_ere(regex):
    """Python regex to POSIX ERE matching the same lines, or None.

    Built from the regex's parse tree: named and non-capturing groups become
    plain groups, lazy repeats greedy (the same lines match), optional parts
    that span lines are dropped and alternatives that need a newline are left
    out (grep reads lines), \\d/\\s/\\w become POSIX classes.
    """
    try:
        return _ere(list(sre_parse.parse(regex)))
    except _NoLineForm:
        return None


def best_of(repeat, function):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=200)
    parser.add_argument("--error-rate", type=float, default=0.005)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--patterns", default=DEFAULT_PATTERNS)
    parser.add_argument("--keep", help="write the log here and keep it")
    args = parser.parse_args()
    grep = shutil.which("grep")
    pattern_set = load_patterns(args.patterns)
    folder = tempfile.mkdtemp(prefix="auto_heal_bench_")
    try:
        path = args.keep or os.path.join(folder, "odoo.log")
        size = generate(path, int(args.size_mb * 1e6), args.error_rate)
        megabytes = size / 1e6
        with open(path, "rb") as handle:  # warm the page cache for everyone alike
            while handle.read(1 << 24):
                pass
        print(f"log: {megabytes:.1f} MB, {len(pattern_set.patterns)} patterns, "
              f"error rate {args.error_rate}")
        rows = []
        backends = [name for name, present in (("hyperscan", matcher_module.hyperscan),
                                               ("re2", matcher_module.re2), ("re", True))
                    if present]
        for backend in backends:
            scanner = Scanner(pattern_set, backend=backend)
            seconds, result = best_of(args.repeat, lambda s=scanner: s.scan_file(path))
            rows.append((f"auto_heal scanner ({backend})", seconds,
                         f"{len(result.findings)} findings"))
        if grep:
            eres = [to_ere(p.regex) for p in pattern_set.patterns]
            usable = [e for e in eres if e]
            usable.append("[0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3} [0-9]+ (ERROR|CRITICAL) ")
            pattern_file = os.path.join(folder, "patterns.ere")
            with open(pattern_file, "w") as handle:
                handle.write("\n".join(usable) + "\n")
            command = [grep, "-E", "-c", "-f", pattern_file, path]
            env = dict(os.environ, LC_ALL="C")

            def run_grep():
                done = subprocess.run(command, capture_output=True, text=True, env=env)
                if done.returncode > 1:
                    raise SystemExit(f"grep failed: {done.stderr.strip()}")
                return done.stdout.strip()

            seconds, count = best_of(args.repeat, run_grep)
            rows.append((f"grep -E ({len(usable)} patterns, LC_ALL=C)", seconds,
                         f"{count} matching lines"))
            skipped = len(eres) - len(usable) + 1
            if skipped:
                print(f"note: {skipped} pattern(s) have no ERE form (multi-line or "
                      "look-around) and are left out of grep's set")
        reference = rows[-1][1] if grep else None
        print(f"{'what':48} {'seconds':>8} {'MB/s':>9} {'vs grep':>8}  result")
        for name, seconds, result in rows:
            ratio = f"{reference / seconds:7.2f}x" if reference else "    n/a"
            print(f"{name:48} {seconds:8.3f} {megabytes / seconds:9.1f} {ratio}  {result}")
        if not grep:
            print("grep not found: no reference measured")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
