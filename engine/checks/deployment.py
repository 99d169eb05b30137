"""Deployment configuration: odoo.conf, the running server and the database.

Four checks, each fed by *facts* the caller gathers (``ctx.facts``): the
addon reads the running server's own options (``odoo.tools.config``), the
watchdog reads odoo.conf and the Odoo process's command line
(:func:`effective_options`); both add the host's CPUs and memory::

    facts = {"options": {"workers": 2, "proxy_mode": False, ...},   # Odoo's names
             "cpu_count": 4, "memory_bytes": 8 << 30,
             "gevent": False,              # can Odoo's interpreter import gevent (None: unknown)
             "public_url": "https://erp.example.com",   # default: web.base.url
             "environment": "prod", "databases": ["prod"],
             "no_http_probes": False}      # True: no request to this server (it cannot answer)

- ``realtime_unavailable``: ``workers > 0`` while gevent is missing or
  ``/websocket`` does not upgrade through the public URL (Odoo 18's
  "Couldn't bind the websocket", "Realtime connection lost");
- ``base_url_mismatch``: ``web.base.url`` against the scheme and host that
  requests arrive with, ``proxy_mode`` off while forwarded headers are seen,
  and the URL wkhtmltopdf loads reports from (``report.url``, else
  ``web.base.url``) not answering from the server itself;
- ``workers_sizing``: workers against CPU cores and ``limit_memory_hard`` x
  processes against RAM (Odoo's deployment guide), ``limit_time_real`` against
  the longest cron run;
- ``database_manager_exposed``: ``list_db`` on in prod, the master password
  unset (Odoo's default ``admin``) or trivially guessable. Its value is never
  shown: only that it is weak.

Without facts a check returns one ok result, ``skipped``.

Odoo's sizing guidance (https://www.odoo.com/documentation/18.0/administration/
on_premise/deploy.html, "Worker number calculation" and "Memory size
calculation"): workers = 2 x CPU + 1 at most; 80 % of the requests are light
(about 150 MB) and 20 % heavy (about 1 GB), so a worker needs about
0.8 x 150 + 0.2 x 1024 MB on average.
"""

import base64
import configparser
import hashlib
import hmac
import http.client
import os
import secrets
import socket
import ssl
import stat
from urllib.parse import urlsplit

from .base import (
    CRITICAL,
    NOW_UTC,
    OK,
    WARNING,
    CheckContext,
    CheckResult,
    _ok,
    _query,
    by_thresholds,
    human_bytes,
    human_duration,
    resolve_settings,
)
from .registry import check

#: Odoo 18's defaults (odoo/tools/config.py) for the options these checks read.
ODOO_DEFAULTS = {
    "workers": 0,
    "max_cron_threads": 2,
    "proxy_mode": False,
    "list_db": True,
    "admin_passwd": "admin",
    "limit_memory_hard": 2560 * 1024 * 1024,
    "limit_memory_soft": 2048 * 1024 * 1024,
    "limit_time_real": 120,
    "limit_time_real_cron": -1,
    "gevent_port": 8072,
    "http_port": 8069,
    "http_interface": "",
    "dbfilter": "",
    "db_name": "",
}
OPTION_KEYS = tuple(ODOO_DEFAULTS)

#: Odoo's command-line flags for those options: flag -> (option, kind).
_FLAGS = {
    "--workers": ("workers", int), "--max-cron-threads": ("max_cron_threads", int),
    "--limit-memory-hard": ("limit_memory_hard", int),
    "--limit-memory-soft": ("limit_memory_soft", int),
    "--limit-time-real": ("limit_time_real", int),
    "--limit-time-real-cron": ("limit_time_real_cron", int),
    "--gevent-port": ("gevent_port", int), "--longpolling-port": ("gevent_port", int),
    "--http-port": ("http_port", int), "-p": ("http_port", int),
    "--http-interface": ("http_interface", str), "--db-filter": ("dbfilter", str),
    "-d": ("db_name", str), "--database": ("db_name", str), "-c": ("config", str),
    "--config": ("config", str),
}
_SWITCHES = {"--proxy-mode": ("proxy_mode", True), "--no-database-list": ("list_db", False)}

#: Odoo's deployment guide: a light request ~150 MB (80 %), a heavy one ~1 GB (20 %).
WORKER_MEMORY_ESTIMATE = int((0.8 * 150 + 0.2 * 1024) * 1024 * 1024)

#: Master passwords tried against the stored one (plus the database names).
COMMON_PASSWORDS = ("admin", "odoo", "odoo18", "password", "123456", "12345678", "changeme",
                    "master", "secret")
#: Database names tried as well, at most (each guess costs 0.5 s against a hash).
MAX_NAME_GUESSES = 3

MAX_CONF_BYTES = 1 << 20


class ConfigReadError(Exception):
    """odoo.conf cannot be read or parsed: one line."""


# --------------------------------------------------------------------------
# options


def _as_bool(text):
    return str(text).strip().lower() in ("1", "true", "yes", "on")


def _typed(key, value):
    default = ODOO_DEFAULTS.get(key)
    if isinstance(default, bool):
        return _as_bool(value)
    if isinstance(default, int):
        try:
            return int(float(str(value).strip()))
        except ValueError:
            return default
    return "" if value in (None, False, "False") else str(value)


def read_config_file(path, limit=MAX_CONF_BYTES):
    """The text of odoo.conf at *path*: a regular file of at most *limit* bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigReadError("%s: %s" % (path, exc.strerror or exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigReadError("%s: not a regular file" % path)
        if info.st_size > limit:
            raise ConfigReadError("%s: %d bytes, more than %d" % (path, info.st_size, limit))
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace")


def conf_options(text):
    """The options these checks read, from odoo.conf's ``[options]`` section.

    >>> o = conf_options("[options]\\nworkers = 4\\nproxy_mode = True\\nlist_db = False\\n")
    >>> o["workers"], o["proxy_mode"], o["list_db"], "admin_passwd" in o
    (4, True, False, False)
    """
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise ConfigReadError("odoo.conf does not parse: %s" % str(exc).splitlines()[0]) \
            from None
    if not parser.has_section("options"):
        return {}
    return {key: _typed(key, parser.get("options", key)) for key in OPTION_KEYS
            if parser.has_option("options", key)}


def argv_options(argv):
    """The options set on the Odoo process's command line (they win over odoo.conf).

    >>> argv_options(["odoo-bin", "-c", "/etc/odoo.conf", "--workers=2", "--proxy-mode",
    ...               "--limit-time-real", "600", "--no-database-list"])
    {'config': '/etc/odoo.conf', 'workers': 2, 'proxy_mode': True, 'limit_time_real': 600, \
'list_db': False}
    """
    found, args, index = {}, list(argv or ()), 0
    while index < len(args):
        arg = args[index]
        flag, _, inline = arg.partition("=")
        if arg in _SWITCHES:
            key, value = _SWITCHES[arg]
            found[key] = value
        elif flag in _FLAGS:
            key, kind = _FLAGS[flag]
            if not inline and "=" not in arg:
                index += 1
                inline = args[index] if index < len(args) else ""
            try:
                found[key] = kind(inline)
            except ValueError:
                pass
        index += 1
    return found


def effective_options(conf_text=None, argv=None):
    """Odoo 18's defaults, then odoo.conf, then the command line.

    ``admin_passwd`` is None when odoo.conf does not set it (Odoo then uses
    its default, ``admin``).

    >>> o = effective_options("[options]\\nworkers = 4\\n", ["odoo", "--workers", "2"])
    >>> o["workers"], o["max_cron_threads"], o["admin_passwd"]
    (2, 2, None)
    """
    options = dict(ODOO_DEFAULTS, admin_passwd=None)
    if conf_text:
        options.update(conf_options(conf_text))
    options.update({k: v for k, v in argv_options(argv).items() if k != "config"})
    return options


def host_resources():
    """``(cpu count, memory bytes)`` this process may use: CPU affinity and the
    cgroup's ``cpu.max`` / ``memory.max`` (a container) count, not only the host's."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 0
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    memory = 0
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    try:
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        if limit.isdigit():
            memory = min(memory, int(limit)) if memory else int(limit)
    except OSError:
        pass
    return cpus, memory


# --------------------------------------------------------------------------
# the master password (never shown, never stored)


def _ab64_decode(text):
    text = text.replace(".", "+")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def verify_password(guess, stored):
    """Whether *guess* is the master password *stored* as Odoo 18 keeps it.

    Odoo's ``crypt_context`` (odoo/tools/config.py): passlib's
    ``pbkdf2_sha512`` (``$pbkdf2-sha512$rounds$salt$checksum``, adapted
    base64) or, deprecated, plain text. None for another scheme.

    >>> salt = b"0123456789abcdef"
    >>> digest = hashlib.pbkdf2_hmac("sha512", b"admin", salt, 1000)
    >>> ab64 = lambda raw: base64.b64encode(raw).decode().rstrip("=").replace("+", ".")
    >>> stored = "$pbkdf2-sha512$1000$%s$%s" % (ab64(salt), ab64(digest))
    >>> verify_password("admin", stored), verify_password("odoo", stored)
    (True, False)
    >>> verify_password("admin", "admin"), verify_password("x", "$argon2$...") is None
    (True, True)
    """
    if stored.startswith("$pbkdf2-sha512$"):
        try:
            _, _, rounds, salt, checksum = stored.split("$")
            expected = _ab64_decode(checksum)
            digest = hashlib.pbkdf2_hmac("sha512", guess.encode(), _ab64_decode(salt),
                                         int(rounds), len(expected))
        except (ValueError, TypeError):
            return None
        return hmac.compare_digest(digest, expected)
    if stored.startswith("$"):
        return None
    return hmac.compare_digest(guess.encode(), stored.encode())


def password_weakness(stored, guesses=()):
    """``(kind, text)`` of the stored master password; kind is one of
    ``default``, ``guessable``, ``short``, ``disabled``, ``unknown``, ``strong``.

    The text never holds the password nor the guess that matched it.

    >>> password_weakness(None)[0], password_weakness("admin")[0], password_weakness("")[0]
    ('default', 'default', 'disabled')
    >>> password_weakness(False)[0]
    'disabled'
    >>> password_weakness("odoo")[0], password_weakness("Xk3!")[0]
    ('guessable', 'short')
    >>> password_weakness("correct horse battery staple")
    ('strong', 'the master password is set and not a common one')
    """
    if stored is None:
        return "default", "the master password is not set: Odoo uses its default, 'admin'"
    if stored is False:  # odoo.conf's "admin_passwd = False", as Odoo parses it
        stored = ""
    stored = str(stored)
    if stored == "":
        return "disabled", "the master password is empty: Odoo refuses every database " \
                           "manager operation"
    if verify_password("admin", stored):
        return "default", "the master password is still Odoo's default, 'admin'"
    tried = dict.fromkeys(g for g in (*COMMON_PASSWORDS, *guesses) if g)
    for guess in tried:
        if verify_password(guess, stored):
            return "guessable", "the master password is a common word or the name of a " \
                                "database: trivially guessable"
    if not stored.startswith("$") and len(stored) < 10:
        return "short", "the master password is shorter than 10 characters"
    if verify_password("admin", stored) is None:
        return "unknown", "the master password is hashed with a scheme this check cannot " \
                          "verify"
    return "strong", "the master password is set and not a common one"


# --------------------------------------------------------------------------
# probes


def _origin(url):
    """``scheme://host[:port]`` of *url*, default ports dropped, lower case.

    >>> _origin("HTTPS://ERP.example.com:443/odoo"), _origin("http://127.0.0.1:8069/")
    ('https://erp.example.com', 'http://127.0.0.1:8069')
    >>> _origin("not a url")
    ''
    """
    parts = urlsplit((url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    port = parts.port
    host = parts.hostname.lower()
    if ":" in host:
        host = "[%s]" % host
    default = 443 if parts.scheme == "https" else 80
    return "%s://%s%s" % (parts.scheme, host, "" if port in (None, default) else ":%d" % port)


def is_loopback(host):
    """Whether a Host header names this machine.

    >>> is_loopback("127.0.0.1:8069"), is_loopback("localhost"), is_loopback("[::1]:80")
    (True, True, True)
    >>> is_loopback("erp.example.com")
    False
    """
    host = (host or "").strip().lower()
    if host.startswith("["):
        host = host[1:].split("]")[0]
    elif host.count(":") == 1:
        host = host.split(":")[0]
    return host in ("localhost", "::1", "0.0.0.0") or host.startswith("127.") or \
        host.endswith(".localhost")


def _connection(url, timeout):
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    kwargs = {"timeout": timeout}
    if parts.scheme == "https":
        kwargs["context"] = ssl.create_default_context()
    return kind(parts.hostname, parts.port, **kwargs), parts


def probe_websocket(url, timeout=3.0):
    """A WebSocket handshake on ``<url>/websocket``: ``{"url", "status", "error"}``.

    Status 101 means the upgrade worked (the connection is closed at once).
    Under workers, Odoo's HTTP workers answer 500 ("Couldn't bind the
    websocket"); only the gevent process (``gevent_port``) upgrades.
    """
    target = url.rstrip("/") + "/websocket"
    try:
        connection, parts = _connection(target, timeout)
        try:
            connection.request("GET", parts.path or "/websocket", headers={
                "Upgrade": "websocket", "Connection": "Upgrade",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": base64.b64encode(secrets.token_bytes(16)).decode(),
                "Origin": _origin(url) or url, "User-Agent": "auto_heal-probe"})
            response = connection.getresponse()
            return {"url": target, "status": response.status, "error": "" if
                    response.status == 101 else "HTTP %d %s" % (response.status,
                                                                response.reason)}
        finally:
            connection.close()
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return {"url": target, "status": None, "error": "%s: %s" % (
            type(exc).__name__, str(exc) or "no answer")}


def probe_http(url, timeout=3.0):
    """GET *url*: ``{"url", "status", "error"}`` (no redirect followed)."""
    try:
        connection, parts = _connection(url, timeout)
        try:
            connection.request("GET", (parts.path or "/") + ("?" + parts.query
                                                              if parts.query else ""),
                               headers={"User-Agent": "auto_heal-probe"})
            response = connection.getresponse()
            response.read(4096)
            return {"url": url, "status": response.status,
                    "error": "" if response.status == 200 else
                    "HTTP %d %s" % (response.status, response.reason)}
        finally:
            connection.close()
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return {"url": url, "status": None,
                "error": "%s: %s" % (type(exc).__name__, str(exc) or "no answer")}


def port_open(host, port, timeout=1.0):
    """Whether something accepts TCP connections on *host*:*port*."""
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _param(cursor, key):
    if cursor is None:
        return None
    rows = _query(cursor, "SELECT value FROM ir_config_parameter WHERE key = %s", (key,))
    return rows[0]["value"] if rows else None


def _skipped(check, subject="config"):
    return _ok(check, None, "needs the server's options", "skipped: no deployment facts "
               "given", subject, {"skipped": True})


# --------------------------------------------------------------------------
# the checks


@check("realtime_unavailable", settings={
    "http_probe_timeout_seconds": 3,  # the /websocket and report URL probes
})
def check_realtime_unavailable(cursor=None, settings=None, ctx=None):
    """``workers > 0`` while gevent is missing or ``/websocket`` does not upgrade."""
    s = resolve_settings(settings)
    ctx = ctx or CheckContext()
    facts = ctx.facts or {}
    options = facts.get("options")
    threshold = "with workers, /websocket upgrades (HTTP 101) through the public URL"
    if not options:
        return _skipped("realtime_unavailable", "config:workers")
    workers = int(options.get("workers") or 0)
    if workers <= 0:
        return _ok("realtime_unavailable", 0, threshold,
                   "workers = 0: the threaded server serves /websocket itself",
                   "config:workers")
    timeout = float(s["http_probe_timeout_seconds"])
    public = facts.get("public_url") or _param(cursor, "web.base.url") or ""
    gevent_port = int(options.get("gevent_port") or ODOO_DEFAULTS["gevent_port"])
    gevent_host = facts.get("gevent_host") or options.get("http_interface") or "127.0.0.1"
    listening = port_open(gevent_host, gevent_port, timeout)
    if facts.get("no_http_probes"):
        probe = {"url": public, "status": None, "error": "not probed here"}
    elif _origin(public):
        probe = probe_websocket(public, timeout)
    else:
        probe = {"url": public, "status": None, "error": "no public URL (web.base.url) to probe"}
    problems = []
    if facts.get("gevent") is False:
        problems.append("gevent is not installed in Odoo's Python: the process that serves "
                        "/websocket (odoo gevent, port %d) cannot start" % gevent_port)
    elif not listening:
        problems.append("nothing listens on the gevent port %s:%d" % (gevent_host,
                                                                      gevent_port))
    if probe["status"] != 101 and not facts.get("no_http_probes"):
        problems.append("GET %s with an Upgrade header got %s" % (
            probe["url"], probe["error"] or "no upgrade"))
    details = {"workers": workers, "gevent": facts.get("gevent"), "gevent_port": gevent_port,
               "gevent_port_open": listening, "probe": probe, "public_url": public}
    if not problems:
        return _ok("realtime_unavailable", workers, threshold,
                   "workers = %d and %s upgrades to a WebSocket" % (workers, probe["url"]),
                   "config:workers", details)
    details["what_to_do"] = (
        "With workers > 0 only the gevent process serves the real-time channel: install "
        "gevent in Odoo's Python (Odoo's requirements.txt), make sure the gevent process "
        "runs (port %d, gevent_port), and make the proxy send /websocket there with "
        "`proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "
        "\"upgrade\"` (Odoo's nginx sample). Without it the web client shows 'Realtime "
        "connection lost' and Odoo logs \"Couldn't bind the websocket\"." % gevent_port)
    return [CheckResult(
        "realtime_unavailable", CRITICAL, workers, threshold,
        "workers = %d but the real-time channel does not work: %s" % (
            workers, "; ".join(problems)), details, "config:workers")]


def _seen_origins(cursor, ctx, days):
    if cursor is None or "auto_heal_http_origin" not in ctx.tables:
        return []
    return _query(cursor, f"""
        SELECT host, scheme, forwarded_host, forwarded_proto, forwarded_for, proxy_mode,
               hits, last_seen
          FROM auto_heal_http_origin
         WHERE last_seen > {NOW_UTC} - %s * interval '1 day'
         ORDER BY hits DESC, id
         LIMIT 50""", (days,))


def public_origin(row):
    """The scheme and host a request came with, as its client saw them.

    >>> public_origin({"host": "127.0.0.1:8069", "scheme": "http",
    ...                "forwarded_host": "erp.example.com", "forwarded_proto": "https"})
    'https://erp.example.com'
    >>> public_origin({"host": "erp.example.com:8069", "scheme": "http",
    ...                "forwarded_host": "", "forwarded_proto": ""})
    'http://erp.example.com:8069'
    """
    host = (row.get("forwarded_host") or row.get("host") or "").split(",")[0].strip()
    scheme = (row.get("forwarded_proto") or row.get("scheme") or "http").split(",")[0].strip()
    return _origin("%s://%s" % (scheme.lower(), host))


@check("base_url_mismatch", settings={
    "http_probe_timeout_seconds": 3,  # the /websocket and report URL probes
    "origin_window_days": 7,  # requests seen within this many days count
})
def check_base_url_mismatch(cursor=None, settings=None, ctx=None):
    """web.base.url and proxy_mode against the requests seen; the report URL answers."""
    s = resolve_settings(settings)
    ctx = ctx or CheckContext()
    options = (ctx.facts or {}).get("options")
    threshold = "web.base.url is where requests come from; proxy_mode on behind a proxy"
    if not options or cursor is None:
        return _skipped("base_url_mismatch", "config:web.base.url")
    base = _param(cursor, "web.base.url") or ""
    report = _param(cursor, "report.url") or ""
    frozen = _as_bool(_param(cursor, "web.base.url.freeze") or "")
    origins = _seen_origins(cursor, ctx, s["origin_window_days"])
    proxy_mode = bool(options.get("proxy_mode"))
    results = []
    forwarded = [row for row in origins if row["forwarded_host"] or row["forwarded_proto"]
                 or row["forwarded_for"]]
    if forwarded and not proxy_mode:
        first = forwarded[0]
        results.append(CheckResult(
            "base_url_mismatch", WARNING, sum(row["hits"] for row in forwarded), threshold,
            "proxy_mode is off but %d request(s) came through a proxy (X-Forwarded-Host %s, "
            "X-Forwarded-Proto %s): Odoo sees %s://%s instead of %s" % (
                sum(row["hits"] for row in forwarded), first["forwarded_host"] or "-",
                first["forwarded_proto"] or "-", first["scheme"], first["host"],
                public_origin(first)),
            {"origins": [public_origin(row) for row in forwarded][:10],
             "last_seen": first["last_seen"],
             "what_to_do": "Set proxy_mode = True in odoo.conf (and restart Odoo) when Odoo "
                           "runs behind a reverse proxy; the proxy must set X-Forwarded-Host, "
                           "X-Forwarded-Proto and X-Forwarded-For. Without it Odoo builds "
                           "http:// links, logs the proxy's address, and web.base.url is "
                           "reset to the internal address at each admin login."},
            "config:proxy_mode"))
    elif proxy_mode:
        partial = [row for row in forwarded if not row["forwarded_host"]]
        if partial:
            results.append(CheckResult(
                "base_url_mismatch", WARNING, sum(row["hits"] for row in partial), threshold,
                "proxy_mode is on but %d request(s) came with X-Forwarded-For or "
                "X-Forwarded-Proto and no X-Forwarded-Host: Odoo 18 applies the forwarded "
                "headers only with X-Forwarded-Host, so it ignored them" % (
                    sum(row["hits"] for row in partial)),
                {"what_to_do": "Add `proxy_set_header X-Forwarded-Host $http_host;` to the "
                               "proxy (Odoo's nginx sample sets it)."},
                "config:proxy_mode"))
    public = {}
    for row in origins:
        origin = public_origin(row)
        host = urlsplit(origin).netloc
        if origin and not is_loopback(host):
            public[origin] = public.get(origin, 0) + row["hits"]
    if public and _origin(base) not in public:
        main = max(public, key=public.get)
        results.append(CheckResult(
            "base_url_mismatch", WARNING, public[main], threshold,
            "web.base.url is %s but requests arrive as %s (%d seen in %d days): links in "
            "e-mails and on printed documents point elsewhere%s" % (
                base or "(empty)", main, public[main], s["origin_window_days"],
                "; web.base.url.freeze keeps it so" if frozen else ""),
            {"web_base_url": base, "seen": dict(sorted(public.items(),
                                                       key=lambda kv: -kv[1])[:10]),
             "frozen": frozen,
             "what_to_do": "Set web.base.url to %s (Settings > Technical > System "
                           "Parameters) and web.base.url.freeze = True so that an admin login "
                           "through another address does not change it again; with a proxy, "
                           "set proxy_mode first." % main},
            "config:web.base.url"))
    report_base = report or base
    if _origin(report_base) and not (ctx.facts or {}).get("no_http_probes"):
        probe = probe_http(report_base.rstrip("/") + "/web/health",
                           float(s["http_probe_timeout_seconds"]))
        if probe["status"] != 200:
            results.append(CheckResult(
                "base_url_mismatch", WARNING, probe["status"], threshold,
                "%s %s does not answer from the Odoo server (%s): wkhtmltopdf loads the "
                "report's styles from it, so PDFs come out without their header, footer "
                "and layout" % ("report.url" if report else "web.base.url (report.url is "
                                "not set)", report_base, probe["error"]),
                {"report_url": report, "web_base_url": base, "probe": probe,
                 "what_to_do": "Set the system parameter report.url to an address the Odoo "
                               "server reaches itself, e.g. http://127.0.0.1:%s (the public "
                               "URL often does not answer from inside: NAT, firewall, TLS)."
                               % options.get("http_port", 8069)},
                "config:report.url"))
    if not results:
        return _ok("base_url_mismatch", 0, threshold,
                   "web.base.url %s matches the %d origin(s) seen; the report URL answers" % (
                       base or "-", len(public)) if public else
                   "web.base.url %s; no request from outside seen in %d days" % (
                       base or "-", s["origin_window_days"]), "config:web.base.url",
                   {"web_base_url": base, "report_url": report, "proxy_mode": proxy_mode})
    return results


def cron_time_limit(options):
    """The real-time limit of a cron run, in seconds (None: no limit).

    Odoo 18: ``limit_time_real_cron`` when > 0; -1 (the default) means
    ``limit_time_real``; 0 means no limit under workers.

    >>> cron_time_limit({"workers": 2, "limit_time_real": 120, "limit_time_real_cron": -1})
    120
    >>> cron_time_limit({"workers": 2, "limit_time_real": 120, "limit_time_real_cron": 0})
    >>> cron_time_limit({"workers": 0, "limit_time_real": 600, "limit_time_real_cron": 1800})
    1800
    """
    real = int(options.get("limit_time_real") or 0)
    cron = int(options.get("limit_time_real_cron") if options.get("limit_time_real_cron")
               is not None else -1)
    if cron > 0:
        return cron
    if cron == 0 and int(options.get("workers") or 0) > 0:
        return None
    return real or None


@check("workers_sizing", settings={
    "memory_total_warn_percent": 100.0,  # (workers + cron threads) x limit_memory_hard, of RAM
    "memory_total_crit_percent": 150.0,
    "cron_duration_warn_percent": 80.0,  # the longest cron run, of its real-time limit
})
def check_workers_sizing(cursor=None, settings=None, ctx=None):
    """Workers against CPUs, memory limits against RAM, the cron time limit against runs."""
    s = resolve_settings(settings)
    ctx = ctx or CheckContext()
    facts = ctx.facts or {}
    options = facts.get("options")
    threshold = "workers <= 2 x CPU + 1; (workers + cron) x limit_memory_hard <= RAM"
    if not options:
        return _skipped("workers_sizing", "config:workers")
    workers = int(options.get("workers") or 0)
    crons = int(options.get("max_cron_threads") or 0)
    cpus = int(facts.get("cpu_count") or 0)
    ram = int(facts.get("memory_bytes") or 0)
    hard = int(options.get("limit_memory_hard") or 0)
    guide = "Odoo's deployment guide (Worker number and memory size calculation)"
    results = []
    if workers > 0 and cpus:
        most = 2 * cpus + 1
        if workers > most:
            results.append(CheckResult(
                "workers_sizing", by_thresholds(workers, most + 1, 2 * most + 1), workers,
                "workers <= 2 x %d CPU + 1 = %d" % (cpus, most),
                "workers = %d on %d CPU core(s): more than the %d of %s; the workers "
                "compete for the CPU and requests queue" % (workers, cpus, most, guide),
                {"workers": workers, "cpu_count": cpus, "recommended_max": most,
                 "what_to_do": "Lower workers to %d at most (keep a core for PostgreSQL if "
                               "it runs on this host), or add CPUs." % most},
                "config:workers"))
    if workers > 0 and ram:
        processes = workers + crons
        total = processes * hard
        percent = 100.0 * total / ram
        needed = workers * WORKER_MEMORY_ESTIMATE
        status = by_thresholds(percent, s["memory_total_warn_percent"],
                               s["memory_total_crit_percent"]) if hard else OK
        if needed > ram:
            status = CRITICAL
        if status != OK:
            results.append(CheckResult(
                "workers_sizing", status, round(percent, 1),
                "(workers + cron) x limit_memory_hard <= %g%% of RAM" % (
                    s["memory_total_warn_percent"]),
                "%d worker(s) + %d cron thread(s) may each grow to limit_memory_hard %s: %s, "
                "%.0f%% of the host's %s%s" % (
                    workers, crons, human_bytes(hard), human_bytes(total), percent,
                    human_bytes(ram), "; %s estimates %s for %d workers" % (
                        guide, human_bytes(needed), workers) if needed > ram else ""),
                {"workers": workers, "max_cron_threads": crons, "limit_memory_hard": hard,
                 "limit_memory_soft": int(options.get("limit_memory_soft") or 0),
                 "memory_bytes": ram, "total_bytes": total, "estimate_bytes": needed,
                 "what_to_do": "Lower workers or limit_memory_hard so that (workers + "
                               "max_cron_threads) x limit_memory_hard fits in RAM with room "
                               "for PostgreSQL; past it the kernel's OOM killer ends "
                               "processes (PostgreSQL too) instead of Odoo recycling a "
                               "worker."},
                "config:limit_memory_hard"))
    limit = cron_time_limit(options)
    if limit and cursor is not None and "ir_cron_progress" in ctx.tables:
        rows = _query(cursor, """
            SELECT c.id, c.cron_name, lp.timed_out_counter,
                   EXTRACT(EPOCH FROM c.lastcall - prev.create_date)::float8 AS seconds
              FROM ir_cron c
              LEFT JOIN LATERAL (
                  SELECT p.create_date FROM ir_cron_progress p
                   WHERE p.cron_id = c.id AND p.create_date <= c.lastcall
                   ORDER BY p.id DESC LIMIT 1) prev ON TRUE
              LEFT JOIN LATERAL (
                  SELECT p.timed_out_counter FROM ir_cron_progress p
                   WHERE p.cron_id = c.id ORDER BY p.id DESC LIMIT 1) lp ON TRUE
             WHERE c.active AND (prev.create_date IS NOT NULL OR lp.timed_out_counter > 0)
             ORDER BY GREATEST(EXTRACT(EPOCH FROM c.lastcall - prev.create_date),
                               CASE WHEN lp.timed_out_counter > 0 THEN %s END) DESC NULLS LAST
             LIMIT 5""", (float(limit),))
        longest = rows[0] if rows else None
        killed = [row for row in rows if (row["timed_out_counter"] or 0) > 0]
        seconds = max((row["seconds"] or 0.0 for row in rows), default=0.0)
        warn = limit * s["cron_duration_warn_percent"] / 100.0
        status = by_thresholds(seconds, warn, limit)
        if killed:
            status = CRITICAL
        if status != OK and longest:
            which = "limit_time_real_cron" if int(
                options.get("limit_time_real_cron") or -1) > 0 else "limit_time_real"
            seen = ["%r (id %s) was killed in its last run" % (row["cron_name"], row["id"])
                    for row in killed]
            if longest["seconds"]:
                seen.append("%r (id %s) took %s in its last run" % (
                    longest["cron_name"], longest["id"], human_duration(longest["seconds"])))
            results.append(CheckResult(
                "workers_sizing", status, round(seconds, 1),
                "the longest cron run < %g%% of its limit %s" % (
                    s["cron_duration_warn_percent"], human_duration(limit)),
                "%s: the cron time limit is %s (%s); %s" % (
                    "cron runs are cut short" if killed else
                    "a cron run comes close to its time limit", human_duration(limit), which,
                    "; ".join(seen)),
                {"limit_seconds": limit, "limit_option": which, "longest_seconds": seconds,
                 "crons": [{"id": r["id"], "name": r["cron_name"], "seconds": r["seconds"],
                            "timed_out_counter": r["timed_out_counter"]} for r in rows],
                 "what_to_do": "Raise limit_time_real_cron (a limit for cron workers only, "
                               "Odoo 18) above the longest run, or make the job do less per "
                               "run (batches with ir.cron progress). A killed run is retried "
                               "and counts as a failure after 3 timeouts."},
                "config:limit_time_real"))
    if not results:
        return _ok("workers_sizing", workers, threshold,
                   "workers = %d, %d CPU core(s), %s RAM, limit_memory_hard %s" % (
                       workers, cpus, human_bytes(ram) if ram else "?",
                       human_bytes(hard) if hard else "none"), "config:workers",
                   {"workers": workers, "cpu_count": cpus, "memory_bytes": ram})
    return results


@check("database_manager_exposed")
def check_database_manager_exposed(cursor=None, settings=None, ctx=None):
    """list_db on in prod; the master password unset, the default or guessable."""
    resolve_settings(settings)
    ctx = ctx or CheckContext()
    facts = ctx.facts or {}
    options = facts.get("options")
    threshold = "list_db off in prod; a master password that is not the default nor common"
    if not options:
        return _skipped("database_manager_exposed", "config:admin_passwd")
    list_db = bool(options.get("list_db", True))
    prod = (facts.get("environment") or "prod") == "prod"
    stored = options.get("admin_passwd")
    guesses = [name for name in facts.get("databases") or () if name][:MAX_NAME_GUESSES]
    # A hash takes 600,000 PBKDF2 rounds a guess: its verdict is kept between runs, under
    # a digest of the (salted) hash. A plain text password is checked at once, and no
    # digest of it is kept anywhere.
    hashed = isinstance(stored, str) and stored.startswith("$")
    digest = hashlib.sha256(("%s|%s" % (stored, ",".join(guesses))).encode()).hexdigest()[:16] \
        if hashed else None
    cache = (ctx.previous or {}).get("master_password") or {}
    if digest and cache.get("digest") == digest and cache.get("kind"):
        kind, text = cache["kind"], cache["text"]
    else:
        kind, text = password_weakness(stored, guesses)
    if digest and ctx.counters is not None:
        ctx.counters["master_password"] = {"digest": digest, "kind": kind, "text": text}
    results = []
    manager = "/web/database/manager lets whoever knows the master password create, copy, " \
              "back up, restore and drop databases"
    if kind in ("default", "guessable", "short"):
        results.append(CheckResult(
            "database_manager_exposed", CRITICAL if list_db else WARNING, kind, threshold,
            "%s%s" % (text, "; the database manager is open (list_db on): %s" % manager
                      if list_db else "; list_db is off, which blocks the manager"),
            {"weakness": kind, "list_db": list_db,
             "what_to_do": "Set a long random master password: Odoo's database manager "
                           "(Set Master Password) stores it hashed in odoo.conf's "
                           "admin_passwd; or write admin_passwd there yourself and restart. "
                           "In production also set list_db = False and a dbfilter."},
            "config:admin_passwd"))
    if list_db and prod:
        results.append(CheckResult(
            "database_manager_exposed", WARNING, True, threshold,
            "list_db is on in production: the database list and %s" % manager,
            {"list_db": True, "environment": facts.get("environment") or "prod",
             "dbfilter": options.get("dbfilter") or "",
             "what_to_do": "Set list_db = False in odoo.conf (and a dbfilter or db_name) and "
                           "restart Odoo; manage databases from the command line instead."},
            "config:list_db"))
    if not results:
        return _ok("database_manager_exposed", kind, threshold, "%s; list_db is %s" % (
            text, "on" if list_db else "off"), "config:admin_passwd",
            {"weakness": kind, "list_db": list_db})
    return results
