"""Fix action ``restart_service``: restart Odoo or PostgreSQL, then prove it answers.

One way per deployment, always an argv list (never a shell string)::

    systemd        systemctl restart UNIT
    docker         docker restart NAME
    pg_ctl         pg_ctl -D DATADIR -w -t T -l LOG restart   (start when stopped;
                   as the data dir's owner through runuser when we are root)
    pg_ctlcluster  pg_ctlcluster VERSION NAME restart
    command        a configured argv list

Then a probe, polled until it answers or the timeout runs out::

    odoo        GET URL/web/health answers 200          (engine.health.check_odoo_http)
    postgresql  a real connection and SELECT 1 with DSN  (engine.health.check_postgres)

A restart cannot be undone: ``reversible`` is False, the plan says so, and
``rollback`` refuses. When the probe does not answer in time the runner's
rollback therefore fails, and the run ends ``failed`` with ``escalate``: a
person must look. Budgets (:mod:`engine.budget`) stop restart loops; the
caller passes the history of this action on this target.

Parameters: ``service`` (odoo, postgresql), ``via``, and what that way needs:
``unit``, ``container``, ``datadir`` (plus ``pg_ctl``, the binary, and
``pg_log``, its ``-l`` file, default ``DATADIR/pg_ctl.log``), ``cluster``
("15/main") or ``command`` (a list, or a JSON list); ``url`` (odoo) or
``dsn`` (postgresql) for the probe; ``timeout`` in seconds (default:
``context.timeout``); ``if_down``: only restart when the probe fails now
(a healthy service is then a no-op).

>>> argv_for({"service": "odoo", "via": "systemd", "unit": "odoo.service"})
['systemctl', 'restart', 'odoo.service']
>>> argv_for({"service": "odoo", "via": "command", "command": '["/usr/bin/true", "x y"]'})
['/usr/bin/true', 'x y']
"""

import glob
import json
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import time

from .. import health
from ..secrets import mask_secrets
from .base import ActionError, FixAction, Plan, Precondition, register
from .params import DATA, HOST, Param

NAME = "restart_service"
SERVICES = ("odoo", "postgresql")
VIAS = ("systemd", "docker", "pg_ctl", "pg_ctlcluster", "command")
#: pg_ctl status exit codes
PG_RUNNING, PG_STOPPED, PG_NO_DATADIR = 0, 3, 4


def parse_command(value):
    """A configured command as an argv list; a JSON list in a string is accepted.

    >>> parse_command(["a", "b"]), parse_command('["a", "b c"]')
    (['a', 'b'], ['a', 'b c'])
    >>> parse_command("rm -rf /")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    engine.actions.base.ActionError: command must be an argv list (a JSON list of strings), ...
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ActionError("command must be an argv list (a JSON list of strings), "
                              "not a shell string") from None
    if not isinstance(value, (list, tuple)) or not value or \
            not all(isinstance(a, str) and a for a in value):
        raise ActionError("command must be a non-empty list of non-empty strings")
    return list(value)


def parse_cluster(value):
    """``(version, name)`` from ``"15/main"`` (or ``"15 main"``)."""
    parts = str(value or "").replace(" ", "/").split("/")
    if len(parts) != 2 or not all(parts) or not parts[0].replace(".", "").isdigit():
        raise ActionError(f"cluster must be VERSION/NAME, e.g. 15/main, not {value!r}")
    return parts[0], parts[1]


def find_pg_ctl(given=None):
    """The pg_ctl binary: *given*, else on PATH, else the newest in /usr/lib/postgresql."""
    if given:
        return given
    found = shutil.which("pg_ctl")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                        key=lambda p: [int(x) for x in p.split("/")[4].split(".")
                                       if x.isdigit()])
    return candidates[-1] if candidates else "pg_ctl"


def _need(params, key, via):
    value = params.get(key)
    if value in (None, "", [], ()):
        raise ActionError(f"{NAME} via {via} needs {key}")
    return value


def argv_for(params, verb="restart"):
    """The argv that restarts the service (without a runuser prefix)."""
    via = params.get("via")
    if via == "systemd":
        return ["systemctl", "restart", _need(params, "unit", via)]
    if via == "docker":
        return ["docker", "restart", _need(params, "container", via)]
    if via == "pg_ctl":
        datadir = _need(params, "datadir", via)
        timeout = int(float(params.get("timeout") or 60))
        log = params.get("pg_log") or os.path.join(datadir, "pg_ctl.log")
        return [find_pg_ctl(params.get("pg_ctl")), "-D", datadir, "-w", "-t", str(timeout),
                "-l", log, verb]
    if via == "pg_ctlcluster":
        version, name = parse_cluster(_need(params, "cluster", via))
        return ["pg_ctlcluster", version, name, "restart"]
    if via == "command":
        return parse_command(_need(params, "command", via))
    raise ActionError(f"via must be one of {', '.join(VIAS)}, not {via!r}")


def _executable(name):
    if os.sep in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    return shutil.which(name)


def _run(argv, timeout, env=None):
    """Run *argv* (no shell); ``(exit code, output)``. Output goes to a file,
    never a pipe, so a daemon that inherits it cannot make us wait."""
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=timeout, cwd="/",
                                  start_new_session=True, env=env)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = None
        except OSError as exc:
            return 127, f"{argv[0]}: {exc.strerror or exc}"
        out.seek(0)
        text = out.read(65536).decode("utf-8", "replace").strip()
    if code is None:
        return None, f"no exit within {timeout:g}s" + (f": {text}" if text else "")
    return code, text


def _owner_prefix(datadir):
    """``["runuser", "-u", OWNER, "--"]`` when we are root and the data dir is not ours."""
    if os.geteuid() != 0:
        return []
    try:
        uid = os.stat(datadir).st_uid
    except OSError:
        return []
    if uid == 0:
        return []
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        raise ActionError(f"{datadir} is owned by uid {uid}, which has no name") from None
    return ["runuser", "-u", name, "--"]


def pg_status(params):
    """``(code, text)`` of ``pg_ctl status``: 0 running, 3 stopped, 4 no data dir."""
    datadir = params["datadir"]
    argv = _owner_prefix(datadir) + [find_pg_ctl(params.get("pg_ctl")), "status", "-D", datadir]
    return _run(argv, 30)


def probe(kind, where, timeout):
    """One probe: a :class:`engine.health.CheckResult`."""
    timeout = max(1.0, float(timeout))
    if kind == "odoo":
        return health.check_odoo_http(where, timeout=timeout)[0]
    return health.check_postgres(where, timeout=timeout)


def _tail(text, lines=5):
    return " | ".join(mask_secrets(text).splitlines()[-lines:])


@register
class RestartService(FixAction):
    """Restart Odoo or PostgreSQL one configured way, then probe it."""

    name = NAME
    runs_on = "host"
    reversible = False
    params = (
        Param("service", "choice", DATA, "what to restart", required=True, choices=SERVICES),
        Param("via", "choice", HOST, "how to restart it", required=True, choices=VIAS),
        Param("unit", "text", HOST, "the systemd unit (via systemd)", metavar="UNIT"),
        Param("container", "text", HOST, "the docker container (via docker)", metavar="NAME"),
        Param("datadir", "path", HOST, "the PostgreSQL data dir (via pg_ctl)", metavar="DIR"),
        Param("pg_ctl", "path", HOST, "the pg_ctl binary (default: on PATH)", metavar="BIN"),
        Param("pg_log", "path", HOST, "pg_ctl's -l log file (default: DATADIR/pg_ctl.log)",
              metavar="FILE"),
        Param("cluster", "text", HOST, "the Debian cluster (via pg_ctlcluster)",
              metavar="VERSION/NAME"),
        Param("command", "argv", HOST, "the argv to run (via command)"),
        Param("url", "url", HOST, "Odoo's base URL for the probe (service odoo)"),
        Param("dsn", "text", HOST, "the PostgreSQL DSN for the probe (service postgresql)",
              metavar="DSN"),
        Param("timeout", "number", HOST, "seconds the probe may wait after the restart",
              default=60, low=1, high=3600, metavar="SECONDS"),
        Param("if_down", "bool", DATA, "restart only when the probe fails now"),
    )

    def check(self, params):
        service, via = params.get("service"), params.get("via")
        needed = {"systemd": "unit", "docker": "container", "pg_ctl": "datadir",
                  "pg_ctlcluster": "cluster", "command": "command"}.get(via)
        if needed and not params.get(needed):
            raise ActionError(f"{NAME} via {via} needs {needed}")
        if via in ("pg_ctl", "pg_ctlcluster") and service != "postgresql":
            raise ActionError(f"via {via} restarts PostgreSQL, not {service}")
        if via == "pg_ctlcluster":
            parse_cluster(params["cluster"])
        probe_key = "url" if service == "odoo" else "dsn"
        if not params.get(probe_key):
            raise ActionError(f"{NAME} of {service} needs {probe_key} for the probe that "
                              "verifies it")
    description = ("Restart Odoo or PostgreSQL (systemd, docker, pg_ctl, pg_ctlcluster or a "
                   "configured argv list) and verify it with a probe within a timeout.")

    def plan(self, context, params):
        service, via = params.get("service"), params.get("via")
        if service not in SERVICES:
            raise ActionError(f"service must be one of {', '.join(SERVICES)}, not {service!r}")
        if via not in VIAS:
            raise ActionError(f"via must be one of {', '.join(VIAS)}, not {via!r}")
        if via in ("pg_ctl", "pg_ctlcluster") and service != "postgresql":
            raise ActionError(f"via {via} restarts PostgreSQL, not {service}")
        kind = service
        where = params.get("url") if kind == "odoo" else params.get("dsn")
        if not where:
            raise ActionError(f"{NAME} of {service} needs {'url' if kind == 'odoo' else 'dsn'} "
                              "for the probe that verifies it")
        timeout = float(params.get("timeout") or context.timeout or 60)
        if timeout <= 0:
            raise ActionError("timeout must be > 0")
        params = dict(params, timeout=timeout)

        preconditions, steps, verb, prefix = [], [], "restart", []
        argv = argv_for(params)
        binary = _executable(argv[0])
        preconditions.append(Precondition(f"{argv[0]} is installed", binary is not None,
                                          "" if binary else "not found on PATH"))
        if via == "systemd":
            running = os.path.isdir("/run/systemd/system")
            preconditions.append(Precondition("systemd runs this host", running,
                                              "" if running else "/run/systemd/system is missing"))
            if binary and running:
                code, out = _run([binary, "show", "-p", "LoadState", "--value", params["unit"]], 30)
                preconditions.append(Precondition(
                    f"unit {params['unit']} exists", code == 0 and out.strip() == "loaded",
                    _tail(out) or f"exit {code}"))
        elif via == "docker" and binary:
            code, out = _run([binary, "inspect", "--format", "{{.Name}}", params["container"]], 30)
            preconditions.append(Precondition(f"container {params['container']} exists",
                                              code == 0, "" if code == 0 else _tail(out)))
        elif via == "pg_ctl":
            datadir = params["datadir"]
            has_data = os.path.isfile(os.path.join(datadir, "PG_VERSION"))
            preconditions.append(Precondition(f"{datadir} holds a PostgreSQL cluster", has_data,
                                              "" if has_data else "no PG_VERSION there"))
            prefix = _owner_prefix(datadir)
            if prefix:
                found = _executable("runuser")
                preconditions.append(Precondition(
                    f"runuser is installed (pg_ctl runs as {prefix[2]}, the data dir's owner)",
                    found is not None))
            if binary and has_data:
                code, out = pg_status(params)
                verb = "start" if code == PG_STOPPED else "restart"
                state = {PG_RUNNING: "running", PG_STOPPED: "stopped"}.get(code) or _tail(out)
                steps.append(f"pg_ctl status: {state or code}")
                argv = argv_for(params, verb)
        elif via == "pg_ctlcluster":
            version, name = parse_cluster(params["cluster"])
            conf = f"/etc/postgresql/{version}/{name}"
            preconditions.append(Precondition(f"cluster {version}/{name} exists",
                                              os.path.isdir(conf), f"{conf} is missing"
                                              if not os.path.isdir(conf) else ""))
        full = prefix + argv

        before = probe(kind, where, min(timeout, 5.0))
        shown = mask_secrets(where)
        steps.insert(0, f"now: {kind} probe {before.status}: {before.message}")
        if_down = bool(params.get("if_down"))
        changes = not (if_down and before.status == health.OK)
        steps.append("run: " + shlex.join(full))
        how = f"GET {shown}/web/health" if kind == "odoo" else f"connect + SELECT 1 to {shown}"
        steps.append(f"verify: poll the {kind} probe ({how}) until it answers, "
                     f"for at most {timeout:g}s")
        steps.append("a restart cannot be undone: there is no rollback")
        target = "%s via %s: %s" % (service, via, {
            "systemd": params.get("unit"), "docker": params.get("container"),
            "pg_ctl": os.path.realpath(params["datadir"]) if via == "pg_ctl" else "",
            "pg_ctlcluster": params.get("cluster"),
            "command": argv[0]}[via])
        summary = (f"restart {service} via {via} ({verb})" if changes
                   else f"{service} answers its probe; --if-down: nothing to restart")
        return Plan(NAME, target, summary, steps=steps, preconditions=preconditions,
                    changes=changes, reversible=False,
                    details={"service": service, "via": via, "argv": full, "verb": verb,
                             "probe": {"kind": kind, "where": where}, "timeout": timeout,
                             "params": {k: params.get(k) for k in
                                        ("datadir", "pg_ctl", "pg_log", "timeout")}})

    def backup(self, context, plan):
        probe_ = plan.details["probe"]
        before = probe(probe_["kind"], probe_["where"], 5.0)
        manifest = {"probe_before": before.to_dict(), "reversible": False}
        if plan.details["via"] == "pg_ctl":
            code, out = pg_status(plan.details["params"])
            manifest["pg_ctl_status_before"] = {"code": code, "output": _tail(out)}
        return manifest

    def apply(self, context, plan, backup):
        details = plan.details
        argv = list(details["argv"])
        note = ""
        if details["via"] == "pg_ctl":  # the server may have stopped or started since the plan
            code, _ = pg_status(details["params"])
            verb = "start" if code == PG_STOPPED else "restart"
            if verb != argv[-1]:
                note = f" (planned {argv[-1]}, but the server is now " \
                       f"{'stopped' if code == PG_STOPPED else 'running'})"
                argv[-1] = verb
        code, out = _run(argv, details["timeout"] + 30)
        if code != 0:
            why = "timeout" if code is None else f"exit {code}"
            raise ActionError(f"{shlex.join(argv)} failed ({why}): {_tail(out)}")
        return f"ran {shlex.join(argv)}{note}: exit 0" + (f"; {_tail(out, 3)}" if out else "")

    def verify(self, context, plan):
        probe_, timeout = plan.details["probe"], plan.details["timeout"]
        start = time.monotonic()
        deadline = start + timeout
        delay, attempts = 0.5, 0
        while True:
            attempts += 1
            remaining = deadline - time.monotonic()
            check = probe(probe_["kind"], probe_["where"], min(5.0, max(1.0, remaining)))
            if check.status == health.OK:
                return True, (f"{check.message} (attempt {attempts}, "
                              f"{time.monotonic() - start:.1f}s after the restart)")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False, (f"no answer within {timeout:g}s ({attempts} attempts); "
                               f"last: {check.message}")
            time.sleep(min(delay, remaining))
            delay = min(delay * 1.5, 5.0)

    def rollback(self, context, plan, backup):
        raise ActionError("a restart cannot be undone; a person must look at the service")
