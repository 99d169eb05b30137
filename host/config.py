"""The watchdog's TOML configuration (``bin/auto-heal monitor --config FILE``).

Every key has a default (:data:`DEFAULTS`); a file names only what differs.
An unknown section or key, or a value of the wrong type, is an error that
names it: a typo must not silently turn a safety off. Relative paths are
taken from the config file's folder. ``examples/auto-heal.toml`` documents
every key.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "auto-heal.toml")
>>> _ = open(path, "w").write('''
... [odoo]
... url = "http://127.0.0.1:8069"
... pidfile = "run/odoo.pid"
... [probes.liveness]
... failure_threshold = 5
... ''')
>>> config = load(path)
>>> config["probes"]["liveness"]["failure_threshold"], config["probes"]["liveness"]["period"]
(5, 10.0)
>>> config["odoo"]["pidfile"] == os.path.join(os.path.dirname(path), "run/odoo.pid")
True
>>> _ = open(path, "w").write('[odoo]\\nurll = "x"\\n')
>>> try:
...     load(path)
... except ConfigError as exc:
...     print(str(exc).split(": ", 1)[1])
[odoo] has no key 'urll' (known: cmdline, config, logs, pidfile, restart, url)
"""

import copy
import math
import os

from engine.errors import EngineError

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

SYSTEM_STATE_DIR = "/var/lib/odoo_auto_heal"
DEFAULT_LOG_FILE = "/var/log/odoo_auto_heal.log"


def _probe(period, timeout, failure, success=1, **extra):
    return dict(period=float(period), timeout=float(timeout), failure_threshold=failure,
                success_threshold=success, **extra)


def _restart(timeout):
    return {"via": "", "unit": "", "container": "", "datadir": "", "pg_ctl": "", "pg_log": "",
            "cluster": "", "command": [], "timeout": float(timeout), "stop_timeout": 30.0}


DEFAULTS = {
    "watchdog": {
        "state_dir": SYSTEM_STATE_DIR,
        "log_file": DEFAULT_LOG_FILE,
        "log_level": "info",
        "audit_log": "",
        "host": "",
        "interval": 5.0,
    },
    "odoo": {
        "url": "http://127.0.0.1:8069",
        "pidfile": "",
        "cmdline": "",
        "config": "",
        "logs": [],
        "restart": _restart(120),
    },
    "postgresql": {
        "dsn": "",
        "restart": _restart(60),
    },
    "probes": {
        "startup": _probe(10, 5, 60, progress_grace=1800.0),
        "liveness": _probe(10, 5, 3),
        "readiness": _probe(10, 5, 3),
        "postgresql": _probe(10, 5, 3),
        "process": _probe(5, 5, 1, rss_warn_mb=0.0, cpu_warn_percent=0.0),
        "disk": {"period": 60.0, "paths": [], "warn_percent": 15.0, "crit_percent": 5.0},
        "log_freshness": {"period": 60.0, "warn_seconds": 3600.0, "crit_seconds": 21600.0},
    },
    "restart": {
        "max_restarts": 3,
        "window": 900.0,
        "first_delay": 10.0,
        "factor": 2.0,
        "max_delay": 300.0,
        "healthy_reset": 600.0,
    },
    "scan": {
        "enabled": True,
        "patterns": "",
        "settle": 10.0,
        "min_severity": "low",
        "max_mb_per_cycle": 16,
    },
    "fixes": {
        "auto": [],
        "roots": [],
        "max_runs": 3,
        "window": 1800.0,
        "first_delay": 30.0,
    },
    "drift": {
        "files": [],
        "versions_dir": "",
        "keep": 20,
        "good_after": 60.0,
        "crash_window": 60.0,
        "period": 10.0,
    },
    "handover": {
        "url": "",
        "db": "",
        "login": "",
        "api_key_file": "",
        "batch": 100,
        "timeout": 30.0,
        "incidents": "always",
        "retry": 30.0,
        "run_approved": True,
        "spool_max_mb": 64,
    },
    "alert": {
        "command": [],
        "timeout": 30.0,
        "repeat": 3600.0,
    },
    # [actions.NAME]: host parameters of fix actions (checked by _actions)
    "actions": {},
    # host checks (engine/hostchecks.py; run by host/host_checks.py)
    "backup": {
        "period": 900.0,
        "dumps_dir": "",
        "database": "",
        "filestore_dir": "",
        "live_filestore": "",
        "crit_hours": 26,
        "pg_restore": "",
    },
    "deployment": {
        "enabled": True,
        "period": 3600.0,
        "public_url": "",
        "environment": "prod",
    },
}

#: Keys holding paths (resolved from the config file's folder).
PATH_KEYS = {
    ("watchdog", "state_dir"), ("watchdog", "log_file"), ("watchdog", "audit_log"),
    ("odoo", "pidfile"), ("odoo", "config"), ("odoo", "logs"),
    ("odoo", "restart", "datadir"), ("odoo", "restart", "pg_log"),
    ("postgresql", "restart", "datadir"), ("postgresql", "restart", "pg_log"),
    ("probes", "disk", "paths"), ("scan", "patterns"), ("fixes", "roots"),
    ("drift", "files"), ("drift", "versions_dir"), ("handover", "api_key_file"),
    ("backup", "dumps_dir"), ("backup", "filestore_dir"), ("backup", "live_filestore"),
    ("backup", "pg_restore"),
}
CHOICES = {
    ("watchdog", "log_level"): ("debug", "info", "warning", "error"),
    ("odoo", "restart", "via"): ("", "systemd", "docker", "command"),
    ("postgresql", "restart", "via"): ("", "systemd", "docker", "pg_ctl", "pg_ctlcluster",
                                       "command"),
    ("scan", "min_severity"): ("low", "medium", "high", "critical"),
    ("handover", "incidents"): ("always", "when_down"),
    ("deployment", "environment"): ("dev", "staging", "prod"),
}
HOST_ACTIONS = ("remove_deprecated_cron_fields", "fix_permissions", "restore_config")


class ConfigError(EngineError):
    """The configuration file cannot be used: one line naming the key."""


def _where(keys):
    return "[" + ".".join(keys[:-1]) + "] " + keys[-1] if len(keys) > 1 else keys[0]


#: The largest number any key takes: no period, timeout or count of the watchdog
#: needs more (about 115 days in seconds), and nan and inf are refused.
MAX_NUMBER = 1e7


def _merge(default, given, keys, path, base):
    if not isinstance(given, dict):
        raise ConfigError(f"{path}: [{'.'.join(keys)}] must be a table")
    result = copy.deepcopy(default)
    for key, value in given.items():
        where = keys + (key,)
        if where == ("actions",):
            result[key] = _actions(value, path, base)
            continue
        if key not in default:
            section = "[" + ".".join(keys) + "]" if keys else "the file"
            raise ConfigError(f"{path}: {section} has no key {key!r} "
                              f"(known: {', '.join(sorted(default))})")
        expected = default[key]
        if isinstance(expected, dict):
            result[key] = _merge(expected, value, where, path, base)
            continue
        result[key] = _check_value(expected, value, where, path)
        if where in PATH_KEYS:
            result[key] = _resolve(result[key], base)
    return result


def _check_value(expected, value, where, path):
    name = _where(where)
    if isinstance(expected, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: {name} must be true or false")
        return value
    if isinstance(expected, int):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NUMBER:
            raise ConfigError(f"{path}: {name} must be an integer from 1 to {MAX_NUMBER:.0f}")
        return value
    if isinstance(expected, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: {name} must be a number")
        if not math.isfinite(value):
            raise ConfigError(f"{path}: {name} must be a finite number, not {value}")
        if not 0 <= value <= MAX_NUMBER:
            raise ConfigError(f"{path}: {name} must be a number from 0 to {MAX_NUMBER:.0f}")
        return float(value)
    if isinstance(expected, list):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{path}: {name} must be a list of non-empty strings")
        return list(value)
    if not isinstance(value, str):
        raise ConfigError(f"{path}: {name} must be a string")
    choices = CHOICES.get(where)
    if choices and value not in choices:
        raise ConfigError(f"{path}: {name} must be one of "
                          f"{', '.join(repr(c) for c in choices)}, not {value!r}")
    return value


def _actions(given, path, base):
    """``[actions.NAME]``: this host's parameters of each fix action, checked against
    the action's declarations (engine/actions/params.py): only host parameters."""
    from engine.actions import actions
    from engine.actions.base import ActionError
    from engine.actions.params import HOST, declared

    if not isinstance(given, dict):
        raise ConfigError(f"{path}: [actions] must be a table of [actions.NAME] tables")
    known = actions(runs_on="host")
    out = {}
    for name, table in given.items():
        if name not in known:
            raise ConfigError(f"{path}: [actions.{name}]: not a host fix action (known: "
                              f"{', '.join(known)})")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [actions.{name}] must be a table")
        params = declared(known[name])
        out[name] = {}
        for key, value in table.items():
            param = params.get(key)
            if param is None or param.trust != HOST:
                host_keys = sorted(p.name for p in known[name].params if p.trust == HOST)
                raise ConfigError(f"{path}: [actions.{name}] has no host parameter {key!r} "
                                  f"(host parameters: {', '.join(host_keys)})")
            try:
                checked = param.check(value)
            except ActionError as exc:
                raise ConfigError(f"{path}: [actions.{name}] {exc}") from None
            if param.kind in ("path", "paths"):
                checked = _resolve(checked, base)
            out[name][param.name] = checked
    return out


def _resolve(value, base):
    if isinstance(value, list):
        return [_resolve(v, base) for v in value]
    if not value or value == "-":  # "-": stderr (log_file), never a file named "-"
        return value
    value = os.path.expanduser(value)
    return value if os.path.isabs(value) else os.path.normpath(os.path.join(base, value))


def load(path):
    """The configuration in *path* merged over :data:`DEFAULTS`, checked."""
    if tomllib is None:  # pragma: no cover
        raise ConfigError("reading TOML needs Python 3.11 (tomllib) or the tomli package")
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file is a folder: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    base = os.path.dirname(os.path.abspath(path))
    config = _merge(DEFAULTS, data, (), path, base)
    check(config, path)
    config["_path"] = os.path.abspath(path)
    return config


def from_dict(data, base=None):
    """Like :func:`load` for a dict (tests, and the defaults: ``from_dict({})``)."""
    base = base or os.getcwd()
    config = _merge(DEFAULTS, data, (), "<dict>", base)
    check(config, "<dict>")
    config["_path"] = ""
    return config


def check(config, path):
    """Rules across keys (a restart method needs its target, and so on)."""
    from urllib.parse import urlsplit

    parts = urlsplit(config["odoo"]["url"])
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{path}: [odoo] url must be an http(s) URL")
    for service in ("odoo", "postgresql"):
        restart = config[service]["restart"]
        via = restart["via"]
        needed = {"systemd": "unit", "docker": "container", "pg_ctl": "datadir",
                  "pg_ctlcluster": "cluster", "command": "command"}.get(via)
        if needed and not restart[needed]:
            raise ConfigError(f"{path}: [{service}.restart] via = {via!r} needs {needed}")
    if config["postgresql"]["restart"]["via"] and not config["postgresql"]["dsn"]:
        raise ConfigError(f"{path}: [postgresql.restart] needs [postgresql] dsn (the probe that "
                          "verifies the restart)")
    for name in config["fixes"]["auto"]:
        if name not in HOST_ACTIONS:
            raise ConfigError(f"{path}: [fixes] auto: {name!r} is not a host fix action the "
                              f"watchdog runs by itself ({', '.join(HOST_ACTIONS)})")
    if "fix_permissions" in config["fixes"]["auto"] and \
            not config["actions"].get("fix_permissions", {}).get("owner"):
        raise ConfigError(f"{path}: [fixes] auto has fix_permissions: set "
                          "[actions.fix_permissions] owner")
    disk = config["probes"]["disk"]
    if disk["warn_percent"] < disk["crit_percent"] or disk["warn_percent"] > 100:
        raise ConfigError(f"{path}: [probes.disk] warn_percent must be between crit_percent "
                          "and 100")
    for name, probe in config["probes"].items():
        if "period" in probe and probe["period"] <= 0:
            raise ConfigError(f"{path}: [probes.{name}] period must be > 0")
        if "timeout" in probe and probe["timeout"] <= 0:
            raise ConfigError(f"{path}: [probes.{name}] timeout must be > 0")
    if config["watchdog"]["interval"] <= 0:
        raise ConfigError(f"{path}: [watchdog] interval must be > 0")
    handover = config["handover"]
    if handover["db"] and not (handover["login"] and handover["api_key_file"]):
        raise ConfigError(f"{path}: [handover] db needs login and api_key_file")
    for name in ("backup", "deployment"):
        if config[name]["period"] <= 0:
            raise ConfigError(f"{path}: [{name}] period must be > 0")
    public = config["deployment"]["public_url"]
    if public and (urlsplit(public).scheme not in ("http", "https")
                   or not urlsplit(public).netloc):
        raise ConfigError(f"{path}: [deployment] public_url must be an http(s) URL")


def state_dir(config):
    return config["watchdog"]["state_dir"]


def state_path(config):
    return os.path.join(state_dir(config), "state.json")


def spool_path(config):
    return os.path.join(state_dir(config), "spool.jsonl")


def versions_dir(config):
    return config["drift"]["versions_dir"] or os.path.join(state_dir(config), "config")


def audit_path(config):
    return config["watchdog"]["audit_log"] or os.path.join(state_dir(config), "audit.jsonl")


def exported_patterns(config):
    """Where Odoo exports its patterns for this watchdog (``<state_dir>/patterns.json``)."""
    return os.path.join(state_dir(config), "patterns.json")


def watched_files(config):
    files = ([config["odoo"]["config"]] if config["odoo"]["config"] else []) + \
        config["drift"]["files"]
    return list(dict.fromkeys(files))
