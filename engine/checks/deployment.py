"""Deployment configuration: odoo.conf, the running server and the database.

Four checks, each fed by *facts* the caller gathers (``ctx.facts``): the
addon reads the running server's own options (``odoo.tools.config``), the
watchdog reads odoo.conf and the Odoo process's command line
(:func:`engine.checks.deployment_facts.effective_options`); both add the host's CPUs and memory::

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

import hashlib
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
from .deployment_facts import (
    MAX_NAME_GUESSES,
    ODOO_DEFAULTS,
    _as_bool,
    _origin,
    is_loopback,
    password_weakness,
    port_open,
    probe_http,
    probe_websocket,
)
from .registry import check

#: Odoo's deployment guide: a light request ~150 MB (80 %), a heavy one ~1 GB (20 %).
WORKER_MEMORY_ESTIMATE = int((0.8 * 150 + 0.2 * 1024) * 1024 * 1024)


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
