"""What the deployment checks are fed, and the probes they make.

- Odoo's options as the running server has them: odoo.conf
  (:func:`read_config_file`, :func:`conf_options`) under the command line
  (:func:`argv_options`), over Odoo 18's defaults (:func:`effective_options`);
- the host's CPUs and memory (:func:`host_resources`);
- the master password's strength (:func:`password_weakness`: never shown,
  never stored);
- a WebSocket handshake, an HTTP GET and a TCP connect (:func:`probe_websocket`,
  :func:`probe_http`, :func:`port_open`).

The checks themselves are in :mod:`engine.checks.deployment`.
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
