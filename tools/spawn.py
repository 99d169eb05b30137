"""Start a program in the background, like ``systemctl start``, and return at once.

    python tools/spawn.py [--output FILE] -- PROGRAM ARG...

The program gets its own session, stdin from /dev/null and stdout/stderr
appended to FILE (or /dev/null). ``make run`` gives it to the watchdog as
``[odoo.restart] via = "command"``: Odoo does not daemonize, and the watchdog
restarts it with this very command after it died.
"""

import os
import sys


def main(argv):
    output = os.devnull
    if argv[:1] == ["--output"]:
        output, argv = argv[1], argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.stderr.write("usage: spawn.py [--output FILE] -- PROGRAM ARG...\n")
        return 2
    if os.fork():
        return 0
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(2, f"spawn.py: {argv[0]}: {exc.strerror}\n".encode())
        os._exit(127)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
