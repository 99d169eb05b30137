"""``run-approved``: claim the host fix runs approved in Odoo, run them here through the
runner, and report each record back (the host takes data from Odoo, never power:
readme/SECURITY.md)."""

import os
import socket

from host import config as cfg
from host.approved import HostParams, run_claim
from host.rpc import OdooRPC, RPCError, read_api_key

from . import runs
from .base import (
    EXIT_ATTENTION,
    EXIT_OK,
    HELP_FORMAT,
    OK_STATES,
    UsageError,
    audit_options,
    budget_options,
    default_dir,
    error,
    one_line,
    positive_float,
    run_options,
    url,
)

FIX_RUN_MODEL = "auto_heal.fix.run"

RUN_APPROVED_EPILOG = """\
Logs in to Odoo over JSON-RPC with an API key (--api-key-file, mode 0600 and
owned by this user, else $AUTO_HEAL_API_KEY; never printed), claims the
approved host fix runs bound to this host (auto_heal.fix.run.watchdog_claim(HOST):
the runs whose target host is HOST, each with a claim token), runs each one
here through the runner (budgets from the local runs folder), and writes each
record back (watchdog_report(id, record, claim_token=..., host=HOST): Odoo
takes it only from the user, host and claim that took the run).

The host takes data from Odoo, never power (readme/SECURITY.md): Odoo's run
names which file, which version, which service; a run that carries a host
parameter (a program, a unit, a container, an owner, a mode, a root, a DSN or
URL, a file to read, a timeout) is refused and reported back as failed. This
host's parameters come from --config (the watchdog's TOML: [fixes] roots,
[actions.NAME], [odoo.restart] and [postgresql.restart], [drift] for the
config files restore_config may put back) and from --root and --versions.

exit codes: 0 every claimed run done or nothing to change (or none claimed),
1 a run was refused, blocked, rolled back or failed, or a report did not
reach Odoo, 2 bad input, Odoo unreachable or the login refused, 3 internal
error.
"""


def register(sub):
    p = sub.add_parser(
        "run-approved",
        parents=[audit_options(), run_options(), budget_options()],
        formatter_class=HELP_FORMAT,
        help="run the host fix runs approved in Odoo and report back",
        description="Claim the approved host fix runs from Odoo, run them here, and write "
        "their state and output back.",
        epilog=RUN_APPROVED_EPILOG,
    )
    p.add_argument("--url", type=url, required=True, help="Odoo base URL")
    p.add_argument("--db", required=True, help="Odoo database")
    p.add_argument("--login", default=None,
                   help="Odoo login owning the API key (default: $AUTO_HEAL_LOGIN, else admin)")
    p.add_argument("--api-key-file", metavar="FILE",
                   help="file holding the API key (default: $AUTO_HEAL_API_KEY)")
    p.add_argument("--host", default=None,
                   help="the name this host claims runs as (default: the hostname)")
    p.add_argument("--config", metavar="FILE",
                   help="the watchdog's TOML config: this host's parameters ([fixes] roots, "
                   "[actions.NAME], [odoo.restart], [postgresql.restart], [drift])")
    p.add_argument("--root", metavar="DIR", action="append", default=[],
                   help="allowed root for file actions (repeatable), besides [fixes] roots")
    p.add_argument("--versions", metavar="DIR",
                   help="config versions for restore_config (default: as for fix)")
    p.add_argument("--timeout", type=positive_float, default=30.0, metavar="SECONDS",
                   help="JSON-RPC timeout (default: 30)")
    p.set_defaults(func=run)


def _api_key(args):
    if args.api_key_file:
        return read_api_key(args.api_key_file)
    key = os.environ.get("AUTO_HEAL_API_KEY", "").strip()
    if not key:
        raise UsageError("run-approved needs an API key: --api-key-file FILE or "
                         "$AUTO_HEAL_API_KEY")
    return key


def _host_params(args):
    """This host's parameters: the watchdog's config (--config), plus --root/--versions."""
    versions = args.versions or ""
    if args.config:
        return HostParams.from_config(cfg.load(args.config), roots=args.root,
                                      versions_dir=versions)
    return HostParams(roots=args.root, versions_dir=versions or default_dir("config"))


def run(args):
    key = _api_key(args)
    host_params = _host_params(args)
    login = args.login or os.environ.get("AUTO_HEAL_LOGIN") or "admin"
    host = args.host or socket.gethostname()
    runs.audit_log(args)  # refuse now, before claiming anything, if it cannot be written
    client = OdooRPC(args.url, args.db, login, key, timeout=args.timeout)
    client.login()
    claims = client.execute_kw(FIX_RUN_MODEL, "watchdog_claim", [host])
    if not isinstance(claims, list) or not all(isinstance(c, dict) for c in claims):
        raise RPCError("watchdog_claim did not answer a list of runs")
    if not claims:
        print("no approved host fix run for %s" % host)
        return EXIT_OK
    store = runs.run_store(args)
    actor = "watchdog:%s@%s" % (login, args.db)
    trouble = 0
    for claim in claims:
        record = run_claim(claim, host_params, store, runs.run_context(args, actor=actor),
                           runs.budget_policy(args))
        try:
            client.execute_kw(FIX_RUN_MODEL, "watchdog_report",
                              [claim.get("id"), record.to_dict()],
                              {"claim_token": claim.get("claim_token"), "host": host})
            reported = "reported"
        except RPCError as exc:
            error("fix run %s: %s" % (claim.get("id"), exc))
            reported = "NOT reported"
            trouble += 1
        if record.state not in OK_STATES:
            trouble += 1
        print("fix run %s: %s %s -> %s (run %s, %s)%s" % (
            claim.get("id"), record.action, record.target or "-", record.state,
            record.run_id, reported,
            ": %s" % one_line(record.error) if record.error else ""))
        if record.escalate:
            print("  escalate: a person must look at %s" % (record.target or record.action))
    print("%d run(s) claimed, %d need attention" % (len(claims), trouble))
    return EXIT_ATTENTION if trouble else EXIT_OK
