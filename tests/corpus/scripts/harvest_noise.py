"""Turn a real Odoo log into ``none`` corpus entries, one per kind of record.

    .venv/bin/python tests/corpus/scripts/harvest_noise.py LOG=SOURCE... [--skip REGEX]...

Records are read whole (header line and continuation lines). Two records are
of one kind when their logger and the first four words of their message,
module names, paths and numbers aside, are the same (for werkzeug: the
request path); the first record of each kind is printed as a corpus entry,
verbatim, and at most ``--per-logger`` (15) kinds per logger. Several logs
share one count, so a kind is taken once, from the first log that has it.
``--skip`` leaves out the records a pattern type is meant to catch (they
belong in that type's file, not among the none lines).
"""

import argparse
import re
import sys

HEADER = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \d+ [A-Z]+ \S+ (\S+?):? (.*)$")


def records(lines):
    current = []
    for line in lines:
        if HEADER.match(line) and current:
            yield current
            current = []
        current.append(line)
    if current:
        yield current


def kind(record):
    match = HEADER.match(record[0])
    if not match:
        return None
    logger, message = match[1], match[2]
    request = re.search(r'"([A-Z]+ /[^ ?"]*)', message)
    if logger == "werkzeug" and request:
        return logger, (request[1],)
    # Quoted names, module names, paths and numbers vary inside one kind of message.
    message = re.sub(r"'[^']*'|`[^`]*`|\"[^\"]*\"", "Q", message)
    words = ["X" if re.search(r"[^A-Za-z:,.]", w) else w for w in message.split()[:4]]
    return logger, tuple(words)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("logs", nargs="+", metavar="LOG=SOURCE")
    parser.add_argument("--skip", action="append", default=[])
    parser.add_argument("--per-logger", type=int, default=15)
    args = parser.parse_args()
    skips = [re.compile(s) for s in args.skip]
    seen, per_logger = set(), {}
    for pair in args.logs:
        log, _, source = pair.partition("=")
        with open(log, encoding="utf-8") as handle:
            harvest(handle.read().splitlines(), source, skips, seen, per_logger, args.per_logger)


def harvest(lines, source, skips, seen, per_logger, limit):
    for record in records(lines):
        key = kind(record)
        text = "\n".join(record).strip("\n")
        if key is None or key in seen or any(s.search(text) for s in skips):
            continue
        seen.add(key)
        per_logger[key[0]] = per_logger.get(key[0], 0) + 1
        if per_logger[key[0]] > limit:
            continue
        sys.stdout.write(f"\n# source: {source}\n# version: 18.0\n# form: record\n"
                         f"# expect: none\n{text}\n")


if __name__ == "__main__":
    main()
