"""Process probes for the watchdog: is the Odoo process there, alive, sane?

The watchdog finds Odoo's main process either by a pidfile (Odoo's
``--pidfile``, or what systemd's ``PIDFile=`` names) or by a regular
expression on command lines (``odoo-bin|/usr/bin/odoo``), and measures:

* alive: the process exists (a pid from a pidfile whose command line no
  longer matches is a recycled pid: not alive);
* zombie: it exited but its parent did not reap it;
* RSS (resident memory, MiB) and CPU (percent of one core since the last
  probe of the same process).

psutil does the work when it is installed (Odoo ships it); without it, Linux's
``/proc`` is read directly, so the watchdog runs from a bare Python too.

>>> import os
>>> info = probe_process(pid=os.getpid())
>>> info.alive, info.zombie, info.pid == os.getpid(), info.rss_mb > 0
(True, False, True, True)
>>> probe_process(pidfile="/no/such/odoo.pid").alive
False
>>> probe_process(pidfile="/no/such/odoo.pid").detail
'pidfile /no/such/odoo.pid: missing'
"""

import os
import re
import time
from dataclasses import asdict, dataclass

try:  # Odoo ships psutil; the watchdog also works without it (Linux /proc)
    import psutil
except ImportError:  # pragma: no cover - exercised on hosts without psutil
    psutil = None

#: CPU times seen at the previous probe, per (pid, start time): CPU % needs two.
_CPU_SEEN = {}


@dataclass
class ProcessInfo:
    """What one probe of the Odoo process measured."""

    alive: bool
    pid: int | None = None
    started: float | None = None     # epoch seconds: a new value means a new process
    zombie: bool = False
    status: str = ""
    rss_mb: float = 0.0
    cpu_percent: float | None = None  # None on the first probe of a process
    cmdline: str = ""
    detail: str = ""

    def to_dict(self):
        return asdict(self)


def read_pidfile(path):
    """The pid in *path*, or None when it is missing or holds no number.

    >>> import tempfile
    >>> fd, p = tempfile.mkstemp(); _ = os.write(fd, b"4242\\n"); os.close(fd)
    >>> read_pidfile(p)
    4242
    """
    try:
        with open(path, "rb") as handle:
            text = handle.read(64).decode("ascii", "replace").strip()
    except OSError:
        return None
    first = text.split()[0] if text.split() else ""
    return int(first) if first.isdigit() and int(first) > 0 else None


def _proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return None


def _proc_stat(pid):
    """(state letter, utime+stime seconds, start seconds since boot, rss pages) from /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return fields[0], (int(fields[11]) + int(fields[12])) / ticks, int(fields[19]) / ticks, \
        int(fields[21])


def _boot_time():
    try:
        with open("/proc/stat", "rb") as handle:
            for line in handle:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def _all_pids():
    if psutil is not None:
        return psutil.pids()
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _cmdline(pid):
    if psutil is not None:
        try:
            return " ".join(psutil.Process(pid).cmdline())
        except (psutil.Error, OSError):
            return None
    return _proc_cmdline(pid)


def find_pids(cmdline_regex, exclude=()):
    """Pids whose command line matches *cmdline_regex*, oldest first.

    Our own process and its parents are never matched (their command lines
    name the pattern too, e.g. ``auto-heal monitor --config``).
    """
    regex = re.compile(cmdline_regex)
    skip = set(exclude) | {os.getpid(), os.getppid()}
    found = []
    for pid in _all_pids():
        if pid in skip:
            continue
        text = _cmdline(pid)
        if text and regex.search(text):
            found.append(pid)
    return sorted(found)


def probe_process(pid=None, pidfile=None, cmdline_regex=None, now=None):
    """Measure the Odoo process named by *pid*, *pidfile* or *cmdline_regex*.

    With a pidfile and a regex, the pid must also match the regex (a pid left
    in a stale pidfile may belong to another program by now).
    """
    where = ""
    if pid is None and pidfile:
        pid = read_pidfile(pidfile)
        where = f"pidfile {pidfile}"
        if pid is None:
            return ProcessInfo(False, detail=f"{where}: " + (
                "missing" if not os.path.exists(pidfile) else "holds no pid"))
    elif pid is None and cmdline_regex:
        pids = find_pids(cmdline_regex)
        where = f"command line /{cmdline_regex}/"
        if not pids:
            return ProcessInfo(False, detail=f"no process matches {where}")
        pid = pids[0]
    info = _measure(pid, now)
    if info.alive and cmdline_regex and pidfile and not re.search(cmdline_regex, info.cmdline):
        return ProcessInfo(False, pid=pid, detail=f"pid {pid} of {where} is another program "
                                                  f"now ({info.cmdline[:80]!r})")
    if where and not info.alive:
        info.detail = f"{where}: {info.detail}"
    return info


def _measure(pid, now=None):
    now = time.time() if now is None else now
    if psutil is not None:
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                status = proc.status()
                started = proc.create_time()
                cmdline = " ".join(proc.cmdline()) if status != psutil.STATUS_ZOMBIE else ""
                rss = proc.memory_info().rss if status != psutil.STATUS_ZOMBIE else 0
                times = proc.cpu_times()
                cpu_seconds = times.user + times.system
        except psutil.NoSuchProcess:
            return ProcessInfo(False, pid=pid, detail=f"pid {pid}: no such process")
        except psutil.ZombieProcess:
            return ProcessInfo(True, pid=pid, zombie=True, status="zombie",
                               detail=f"pid {pid} is a zombie")
        except (psutil.AccessDenied, OSError) as exc:
            return ProcessInfo(True, pid=pid, detail=f"pid {pid}: cannot read it ({exc})")
    else:
        stat = _proc_stat(pid)
        if stat is None:
            return ProcessInfo(False, pid=pid, detail=f"pid {pid}: no such process")
        letter, cpu_seconds, start_since_boot, pages = stat
        status = {"Z": "zombie", "R": "running", "S": "sleeping", "D": "disk-sleep",
                  "T": "stopped", "t": "tracing-stop", "X": "dead"}.get(letter, letter)
        started = _boot_time() + start_since_boot
        cmdline = _proc_cmdline(pid) or ""
        rss = pages * os.sysconf("SC_PAGE_SIZE")
    zombie = status in ("zombie", "dead")
    key = (pid, round(started, 2))
    previous = _CPU_SEEN.get(key)
    _CPU_SEEN[key] = (now, cpu_seconds)
    if len(_CPU_SEEN) > 64:  # a process seen once long ago: forget it
        for old in sorted(_CPU_SEEN, key=lambda k: _CPU_SEEN[k][0])[:-32]:
            del _CPU_SEEN[old]
    cpu = None
    if previous and now > previous[0]:
        cpu = round(100.0 * (cpu_seconds - previous[1]) / (now - previous[0]), 1)
    rss_mb = round(rss / (1024 * 1024), 1)
    detail = f"pid {pid} {status}, RSS {rss_mb:g} MiB" + (
        f", CPU {cpu:g}%" if cpu is not None else "")
    return ProcessInfo(True, pid=pid, started=started, zombie=zombie,
                       status=status, rss_mb=rss_mb, cpu_percent=cpu, cmdline=cmdline,
                       detail=detail)


def http_probe(url, timeout, db_status=False):
    """One GET of Odoo's ``/web/health`` (``?db_server_status=1`` with *db_status*).

    An :class:`engine.health.CheckResult`: ok on HTTP 200, critical on anything
    else or no answer within *timeout* (a stopped process never answers).
    """
    from . import health

    name = "readiness" if db_status else "liveness"
    return health._http_check(name, health._health_url(url, db_status=db_status), timeout)
