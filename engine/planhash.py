"""The hash of a plan: what a person approved is what runs.

At approval the addon stores the hash of the plan the approver read; at run
time the runner plans again and compares (:func:`engine.actions.runner.execute`
with ``approved_hash``). A different hash stops the run as ``stale`` before
anything is backed up or changed, like Terraform refusing a saved plan that
has gone stale::

    plan at approval ──hash──> stored with each approval
                                      │
    plan at run time ──hash──> equal? ├─ yes: budget, backup, apply, verify
                                      └─ no:  stale, nothing touched, approve again

What a plan hash covers (:func:`plan_hash`): the action, the target, the
summary, the steps, the diff, whether it changes anything and can be rolled
back, the *checks* it makes (the preconditions' descriptions), its details
(which rows, which files with their bytes' sha256, which owner and modes),
and the parameters it was planned with. What it leaves out is what a plan
*measures* rather than *decides*, so that an unchanged plan hashes the same:

- steps that start with ``now:`` (``now: odoo probe ok: HTTP 200 in 0.01 s``);
- the outcome and detail of each precondition (measured again at run time:
  a failing one blocks the run anyway);
- in details and parameters, the identity and times of files and folders
  (``dev``, ``ino``, ``mtime_ns``, ``root_id``...): a file rewritten with the
  same bytes, mode and owner is the same plan; its ``sha256`` is kept.

Secrets are masked before hashing (a DSN's password never reaches the hash),
so a hash can be stored and sent like any other plan text:

>>> from engine.actions.base import Plan, Precondition
>>> def with_dsn(dsn):
...     return plan_hash(Plan("restart_service", "postgresql", "restart", details={
...         "probe": {"where": dsn}}), {"service": "postgresql"})
>>> with_dsn("postgresql://u:one@db/x") == with_dsn("postgresql://u:two@db/x")
True
>>> with_dsn("postgresql://u:one@db/x") == with_dsn("postgresql://u:one@db2/x")
False

>>> plan = Plan("restart_service", "odoo via systemd: odoo.service", "restart odoo",
...             steps=["now: odoo probe critical: connection refused", "run: systemctl restart"],
...             preconditions=[Precondition("systemctl is installed", True)])
>>> later = Plan("restart_service", "odoo via systemd: odoo.service", "restart odoo",
...              steps=["now: odoo probe ok: HTTP 200", "run: systemctl restart"],
...              preconditions=[Precondition("systemctl is installed", False, "not found")])
>>> plan_hash(plan, {"service": "odoo"}) == plan_hash(later, {"service": "odoo"})
True
>>> plan_hash(plan, {"service": "odoo"})[:7]
'sha256:'
>>> other = Plan("restart_service", "odoo via systemd: odoo.service", "restart odoo",
...              steps=["run: systemctl restart", "then: systemctl reload"])
>>> plan_hash(plan, {"service": "odoo"}) == plan_hash(other, {"service": "odoo"})
False
>>> plan_hash(plan, {"service": "odoo"}) == plan_hash(plan, {"service": "postgresql"})
False

A file's bytes count, its inode and mtime do not:

>>> a = Plan("fix", "/srv/a.xml", "fix it", details={"files": [
...     {"path": "/srv/a.xml", "before": {"ino": 1, "mtime_ns": 5, "sha256": "ab"}}]})
>>> b = Plan("fix", "/srv/a.xml", "fix it", details={"files": [
...     {"path": "/srv/a.xml", "before": {"ino": 9, "mtime_ns": 7, "sha256": "ab"}}]})
>>> c = Plan("fix", "/srv/a.xml", "fix it", details={"files": [
...     {"path": "/srv/a.xml", "before": {"ino": 1, "mtime_ns": 5, "sha256": "cd"}}]})
>>> plan_hash(a, {}) == plan_hash(b, {}), plan_hash(a, {}) == plan_hash(c, {})
(True, False)

A host run approved in Odoo is approved by its *request* (:func:`request_hash`):
Odoo cannot plan on the host, so what it can vouch for is the action, the data
parameters it sends and the host that must run it. The watchdog then compares
its own plan with the host plan it reported before, if any (host/approved.py).

>>> request_hash("restart_service", {"service": "odoo"}, "erp1") == \\
...     request_hash("restart_service", {"service": "odoo"}, "ERP1 ")
True
>>> request_hash("restart_service", {"service": "odoo"}, "erp1") == \\
...     request_hash("restart_service", {"service": "odoo"}, "erp2")
False
"""

import hashlib
import json

from .secrets import mask_secrets

PREFIX = "sha256:"
#: Steps that report a measurement, not a change.
MEASURED_STEP_PREFIX = "now:"
#: Keys (at any depth of details and parameters) that name a file's identity or
#: times, or another measurement of the moment, not what the plan does.
VOLATILE_KEYS = frozenset({"dev", "ino", "inode", "mtime", "mtime_ns", "ctime", "ctime_ns",
                           "atime", "atime_ns", "root_id", "measured", "measured_at"})


def _stable(value):
    """*value* without its volatile keys, JSON-able, secrets masked."""
    if isinstance(value, dict):
        return {str(key): _stable(item) for key, item in value.items()
                if str(key) not in VOLATILE_KEYS}
    if isinstance(value, (list, tuple)):
        return [_stable(item) for item in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _digest(content):
    # masked as one text: the masker knows JSON pairs, and one pass is linear and fast
    text = mask_secrets(json.dumps(_stable(content), sort_keys=True, separators=(",", ":"),
                                   ensure_ascii=False, default=str))
    return PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()


def plan_content(plan, params):
    """What :func:`plan_hash` hashes, as a dict (a Plan or its ``to_dict()``).

    >>> from engine.actions.base import Plan
    >>> sorted(plan_content(Plan("a", "t", "s"), {}))
    ['action', 'changes', 'checks', 'details', 'diff', 'params', 'reversible', 'steps', \
'summary', 'target']
    """
    if isinstance(plan, dict) or plan is None:
        data = dict(plan or {})
    else:  # a Plan: its fields as they are (asdict would deep-copy every detail)
        data = {name: getattr(plan, name, None) for name in (
            "action", "target", "summary", "steps", "diff", "preconditions", "changes",
            "reversible", "details")}
    steps = [str(step) for step in data.get("steps") or []
             if not str(step).startswith(MEASURED_STEP_PREFIX)]
    checks = [str(p.get("description", "")) if isinstance(p, dict)
              else str(getattr(p, "description", p)) for p in data.get("preconditions") or []]
    return {
        "action": data.get("action") or "",
        "target": data.get("target") or "",
        "summary": data.get("summary") or "",
        "steps": steps,
        "diff": data.get("diff") or "",
        "changes": bool(data.get("changes", True)),
        "reversible": bool(data.get("reversible", True)),
        "checks": checks,
        "details": data.get("details") or {},
        "params": dict(params or {}),
    }


def plan_hash(plan, params):
    """``sha256:<hex>`` of *plan* (a :class:`engine.actions.base.Plan` or its dict)
    planned with *params*; see the module's docstring for what counts."""
    return _digest(plan_content(plan, params))


def request_hash(action, params, target_host=""):
    """``sha256:<hex>`` of a host run as Odoo can know it: the action, the data
    parameters Odoo sends, and the target host (compared like host names)."""
    host = " ".join(str(target_host or "").split()).lower()
    return _digest({"request": str(action or ""), "params": dict(params or {}), "host": host})


def content_diff(before, after, params_before=None, params_after=None):
    """What the hash covers that differs between two plans, as a unified diff of
    their hashed content (masked, volatile keys left out); ``""`` when they hash
    the same. Shows what a plan's text does not: a file's bytes changed outside
    the diff's context lines, another row id, another owner.

    >>> from engine.actions.base import Plan
    >>> a = Plan("fix", "/srv/a.xml", "fix it", details={"sha256_before": "ab", "ino": 1})
    >>> b = Plan("fix", "/srv/a.xml", "fix it", details={"sha256_before": "cd", "ino": 2})
    >>> print(content_diff(a, b))
    --- hashed before
    +++ hashed now
    @@ -6 +6 @@
    -  "sha256_before": "ab"
    +  "sha256_before": "cd"
    <BLANKLINE>
    >>> content_diff(a, a)
    ''
    """
    import difflib

    def lines(plan, params):
        return mask_secrets(json.dumps(_stable(plan_content(plan, params)), sort_keys=True,
                                       indent=1, ensure_ascii=False,
                                       default=str)).splitlines(True)

    old, new = lines(before, params_before), lines(after, params_after)
    if old == new:
        return ""
    return "".join(difflib.unified_diff(old, new, "hashed before", "hashed now", n=0))


def short(value):
    """The first 12 hex digits, for messages.

    >>> short("sha256:0123456789abcdef0123")
    '0123456789ab'
    >>> short("")
    '-'
    """
    if not value:
        return "-"
    return str(value)[len(PREFIX):len(PREFIX) + 12] if str(value).startswith(PREFIX) \
        else str(value)[:12]
