"""Health checks: probes with a status, a measured value and its threshold.

:class:`CheckResult` is the one result type of every health check: these
probes, the database checks of :mod:`engine.checks` and the watchdog's host
checks. Each probe returns one or more. The status of a set of results is
the worst of them (ok < warning < critical), and maps to the exit code of a
monitoring plugin: 0 ok, 1 warning, 2 critical.

Probes:

- :func:`check_odoo_http`: Odoo's ``GET /web/health`` (the HTTP worker
  answers) and ``GET /web/health?db_server_status=1`` (Odoo 18 answers 500
  when PostgreSQL is unreachable);
- :func:`check_postgres`: a PostgreSQL connection and ``SELECT 1``
  (psycopg2 is imported only here: without it the check is critical, the
  watchdog still runs);
- :func:`check_disk`: free space on a path, in percent;
- :func:`check_log_freshness`: age of a log file's last write.

Every message goes through :func:`engine.secrets.mask_secrets`.

>>> checks = [CheckResult("disk:/", OK, 40.0, "warn<15% crit<5%", "40% free"),
...           CheckResult("log", WARNING, 4000, "warn>3600s", "stale")]
>>> overall(checks), exit_code(overall(checks))
('warning', 1)
>>> overall([])
'ok'
"""

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from urllib.parse import urlsplit, urlunsplit

from .secrets import mask_secrets

OK, WARNING, CRITICAL = "ok", "warning", "critical"
_RANK = {OK: 0, WARNING: 1, CRITICAL: 2}

#: Default thresholds (the CLI exposes them as options).
DISK_WARN_PERCENT = 15.0
DISK_CRIT_PERCENT = 5.0
LOG_WARN_SECONDS = 3600
LOG_CRIT_SECONDS = 6 * 3600
TIMEOUT = 5.0


STATUSES = (OK, WARNING, CRITICAL)


@dataclass
class CheckResult:
    """One check outcome about one subject.

    ``check`` names the check: a key of :data:`engine.checks.CHECKS` (the
    ``check`` of data/patterns.json) or a probe (``odoo_http``, ``disk:/``);
    ``name`` is the same, under the word ``bin/auto-heal health`` shows.
    ``subject`` is what the result is about (``cron:7``, ``module:sale``,
    ``pid:4242``, ``table:public.x``, ``database:prod``), so that findings group
    per subject; ``details`` holds the figures, JSON-able. Messages and texts in
    the details are masked.

    >>> r = CheckResult("cron_failing", WARNING, 2, ">= 1 failure",
    ...                 "Cron 'Mail: send' (id 7) failed 2 times in a row", subject="cron:7")
    >>> r.name, r.to_dict()["subject"], r.to_dict()["name"]
    ('cron_failing', 'cron:7', 'cron_failing')
    >>> CheckResult("x", "fine", 0, "", "")
    Traceback (most recent call last):
    ...
    ValueError: unknown status 'fine'
    """

    check: str
    status: str  # ok, warning, critical
    value: object  # what was measured (HTTP status, free %, age in seconds, a count ...)
    threshold: object  # what it was compared with, readable
    message: str
    details: dict = field(default_factory=dict)
    subject: str = ""

    def __post_init__(self):
        if self.status not in _RANK:
            raise ValueError("unknown status %r" % self.status)
        self.message = mask_secrets(self.message)
        self.details = jsonable(self.details)

    @property
    def name(self):
        """The check's name, as the probes call it."""
        return self.check

    def to_dict(self):
        """The fields, and ``name`` (the key ``bin/auto-heal health --json`` shows)."""
        data = asdict(self)
        data["name"] = self.check
        return data


def jsonable(value):
    """*value* as JSON-able data: dates as text, floats rounded, strings masked.

    >>> jsonable({"at": date(2026, 1, 2), 3: (1.23456, None), "dsn": "postgresql://u:pw@h/db"})
    {'at': '2026-01-02', '3': [1.235, None], 'dsn': 'postgresql://u:***@h/db'}
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, float):
        return round(value, 3)
    if value is None or isinstance(value, (bool, int)):
        return value
    try:
        return round(float(value), 3)  # Decimal
    except (TypeError, ValueError):
        return mask_secrets(str(value))


def worst(*statuses):
    """The worst of *statuses*.

    >>> worst(OK, CRITICAL, WARNING)
    'critical'
    """
    return max(statuses, key=_RANK.__getitem__, default=OK)


def overall(checks):
    """The status of a set of checks: the worst one, ok when empty."""
    return worst(*(c.status for c in checks))


def exit_code(status):
    """Monitoring-plugin exit code: 0 ok, 1 warning, 2 critical.

    >>> [exit_code(s) for s in (OK, WARNING, CRITICAL)]
    [0, 1, 2]
    """
    return _RANK[status]


def _by_thresholds(value, warn, crit, higher_is_worse):
    if higher_is_worse:
        return CRITICAL if value >= crit else WARNING if value >= warn else OK
    return CRITICAL if value <= crit else WARNING if value <= warn else OK


# --------------------------------------------------------------------------
# Odoo over HTTP


def _health_url(base, db_status=False):
    """``/web/health`` under *base*, unless *base* already names a path.

    >>> _health_url("http://localhost:8069")
    'http://localhost:8069/web/health'
    >>> _health_url("http://localhost:8069/", db_status=True)
    'http://localhost:8069/web/health?db_server_status=1'
    >>> _health_url("https://erp.example.com/web/health")
    'https://erp.example.com/web/health'
    """
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    if not path.endswith("/web/health"):
        path += "/web/health"
    query = parts.query
    if db_status:
        query = (query + "&" if query else "") + "db_server_status=1"
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


#: The most of an HTTP answer a probe reads: /web/health answers a few bytes.
MAX_BODY = 65536


class _HttpFailure(Exception):
    """No HTTP answer: the reason, one line."""


def _http_get(url, timeout):
    """``(status code, body bytes)`` of a GET; :class:`_HttpFailure` without an answer.

    Uses requests when it is installed, else the standard library, so the
    watchdog can probe Odoo from a bare Python.
    """
    try:
        import requests
    except ImportError:
        requests = None
    if requests is not None:
        try:
            # streamed: at most MAX_BODY bytes are read, whatever the answer sends
            response = requests.get(url, timeout=timeout, allow_redirects=False, stream=True)
            try:
                body = response.raw.read(MAX_BODY, decode_content=True)
            finally:
                response.close()
        except requests.exceptions.Timeout:
            raise _HttpFailure("no answer within %gs" % timeout) from None
        except requests.exceptions.ConnectionError as exc:
            raise _HttpFailure("connection failed (%s)" % short_reason(exc)) from None
        except requests.exceptions.RequestException as exc:
            raise _HttpFailure(str(exc).split("\n")[0]) from None
        except OSError as exc:  # the body broke off: urllib3's errors are OSErrors too
            raise _HttpFailure("the answer broke off (%s)" % short_reason(exc)) from None
        return response.status_code, body
    import urllib.error
    import urllib.request

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read(MAX_BODY)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(MAX_BODY)
    except TimeoutError:
        raise _HttpFailure("no answer within %gs" % timeout) from None
    except urllib.error.URLError as exc:
        raise _HttpFailure(
            "connection failed (%s)" % getattr(exc.reason, "strerror", None) or exc.reason
        ) from None
    except (OSError, ValueError) as exc:
        raise _HttpFailure(str(exc).split("\n")[0]) from None


def _http_check(name, url, timeout):
    shown = mask_secrets(url)
    start = time.monotonic()
    try:
        code, body = _http_get(url, timeout)
    except _HttpFailure as exc:
        return CheckResult(name, CRITICAL, None, "HTTP 200", "%s: %s" % (shown, exc))
    elapsed = time.monotonic() - start
    detail = ""
    try:
        data = json.loads(body.decode("utf-8"))
        if isinstance(data, dict) and data.get("status"):
            detail = " status=%s" % data.get("status")
            if data.get("db_server_status") is not None:
                detail += " db_server_status=%s" % data.get("db_server_status")
    except ValueError:
        pass
    status = OK if code == 200 else CRITICAL
    return CheckResult(
        name,
        status,
        code,
        "HTTP 200",
        "%s: HTTP %d%s in %.0f ms" % (shown, code, detail, elapsed * 1000),
    )


def short_reason(exc):
    """The innermost reason of a requests/urllib3 connection error."""
    inner = exc
    for _ in range(10):
        nxt = getattr(inner, "reason", None)
        if nxt is None and inner.args and isinstance(inner.args[0], BaseException):
            nxt = inner.args[0]
        if nxt is None or nxt is inner or not isinstance(nxt, BaseException):
            break
        inner = nxt
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror
    text = str(inner)
    errno_text = re.search(r"\[Errno -?\d+\] ([^)\]'\"]+)", text)
    if errno_text:
        return errno_text.group(1).strip()
    if text.startswith("<") and ": " in text:  # "<urllib3.connection...>: Failed to ..."
        text = text.split(": ", 1)[1]
    return text.split("\n")[0]


def check_odoo_http(url, timeout=TIMEOUT):
    """Probe Odoo's ``/web/health`` and ``/web/health?db_server_status=1``.

    Returns two checks: ``odoo_http`` (the server answers 200) and
    ``odoo_db`` (Odoo reaches PostgreSQL; Odoo 18 answers 500 when not).
    """
    return [
        _http_check("odoo_http", _health_url(url), timeout),
        _http_check("odoo_db", _health_url(url, db_status=True), timeout),
    ]


# --------------------------------------------------------------------------
# PostgreSQL


def check_postgres(dsn, timeout=TIMEOUT):
    """Connect to PostgreSQL with *dsn* (URI or ``key=value``) and run SELECT 1.

    The value is the round trip in milliseconds. psycopg2 is imported here
    only: when it is missing the check is critical and says so.
    """
    shown = mask_secrets(dsn)
    try:
        import psycopg2
    except ImportError:
        return CheckResult(
            "postgres",
            CRITICAL,
            None,
            "connect + SELECT 1",
            "python package 'psycopg2' is not installed; cannot probe %s" % shown,
        )
    start = time.monotonic()
    try:
        conn = psycopg2.connect(dsn, connect_timeout=max(1, int(timeout)))
        try:
            with conn.cursor() as cr:
                cr.execute("SELECT 1")
                cr.fetchone()
                server = conn.server_version
        finally:
            conn.close()
    except Exception as exc:  # psycopg2.Error, and ProgrammingError for a bad DSN
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        return CheckResult(
            "postgres",
            CRITICAL,
            None,
            "connect + SELECT 1",
            "%s: %s" % (shown, mask_secrets(reason)),
        )
    elapsed = (time.monotonic() - start) * 1000
    return CheckResult(
        "postgres",
        OK,
        round(elapsed, 1),
        "connect + SELECT 1",
        "%s: PostgreSQL %s answered in %.0f ms" % (shown, _pg_version(server), elapsed),
    )


def _pg_version(number):
    """libpq's server_version as text.

    >>> _pg_version(150004), _pg_version(90624)
    ('15.4', '9.6')
    """
    if number >= 100000:
        return "%d.%d" % (number // 10000, number % 10000)
    return "%d.%d" % (number // 10000, number // 100 % 100)


# --------------------------------------------------------------------------
# disk and log


def check_disk(path, warn_percent=DISK_WARN_PERCENT, crit_percent=DISK_CRIT_PERCENT):
    """Free space on the filesystem of *path*, in percent of its size.

    >>> import tempfile
    >>> check_disk(tempfile.gettempdir(), warn_percent=0, crit_percent=0).status
    'ok'
    >>> check_disk("/no/such/folder").status
    'critical'
    """
    threshold = "warn<=%g%% crit<=%g%%" % (warn_percent, crit_percent)
    name = "disk:%s" % path
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        return CheckResult(name, CRITICAL, None, threshold, "%s: %s" % (path, exc.strerror or exc))
    free = 100.0 * usage.free / usage.total if usage.total else 0.0
    status = _by_thresholds(free, warn_percent, crit_percent, higher_is_worse=False)
    return CheckResult(
        name,
        status,
        round(free, 1),
        threshold,
        "%s: %.1f%% free (%s of %s)" % (path, free, _human(usage.free), _human(usage.total)),
    )


def _human(n):
    """Bytes, readable.

    >>> _human(1536), _human(5 * 1024 ** 3)
    ('1.5 KiB', '5.0 GiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0


def check_log_freshness(
    path, warn_seconds=LOG_WARN_SECONDS, crit_seconds=LOG_CRIT_SECONDS, now=None
):
    """Seconds since *path* was last written (an Odoo that logs nothing may hang).

    >>> import os, tempfile
    >>> fd, p = tempfile.mkstemp(); os.close(fd)
    >>> check_log_freshness(p).status
    'ok'
    >>> os.utime(p, (0, time.time() - 7200))
    >>> c = check_log_freshness(p)
    >>> c.status, c.value >= 7200
    ('warning', True)
    """
    threshold = "warn>=%ds crit>=%ds" % (warn_seconds, crit_seconds)
    name = "log:%s" % path
    try:
        mtime = os.stat(path).st_mtime
    except OSError as exc:
        return CheckResult(name, CRITICAL, None, threshold, "%s: %s" % (path, exc.strerror or exc))
    age = max(0.0, (time.time() if now is None else now) - mtime)
    status = _by_thresholds(age, warn_seconds, crit_seconds, higher_is_worse=True)
    return CheckResult(name, status, int(age), threshold, "%s: last written %ds ago" % (path, age))
