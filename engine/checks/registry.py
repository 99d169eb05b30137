"""The registry of checks: ``@check(key, settings={...})`` fills three tables.

A check declares its key (the ``check`` of data/patterns.json) and the
settings it reads with their defaults, next to its function::

    @check("cron_failing", settings={
        "cron_failing_min_failures": 1,  # failure_count >= this: a warning
    })
    def check_cron_failing(cursor, settings=None, ctx=None): ...

and the tables are derived, in the order the checks register (the order they
run in)::

    CHECKS          check key -> function
    CHECK_SETTINGS  check key -> the settings it reads besides COMMON_SETTINGS
    DEFAULTS        setting -> default value (COMMON_SETTINGS first)

A setting that several checks read (``filestore_path``, ``ignore_applications``)
is declared by each of them with the same default; two defaults that differ
are refused at import. The function is named ``check_<key>``.

>>> @check("doc_example", settings={"doc_example_limit": 3})
... def check_doc_example(cursor, settings=None, ctx=None):
...     return []
>>> CHECK_SETTINGS["doc_example"], DEFAULTS["doc_example_limit"], check_doc_example.check_key
(('doc_example_limit',), 3, 'doc_example')
>>> @check("doc_example_2", settings={"doc_example_limit": 4})
... def check_doc_example_2(cursor, settings=None, ctx=None):
...     return []
Traceback (most recent call last):
...
ValueError: check doc_example_2: setting doc_example_limit defaults to 4, but to 3 for doc_example
>>> @check("doc_example_3")
... def other_name(cursor, settings=None, ctx=None):
...     return []
Traceback (most recent call last):
...
ValueError: check doc_example_3: its function must be named check_doc_example_3, not other_name
>>> unregister("doc_example")
>>> "doc_example" in CHECKS, "doc_example_limit" in DEFAULTS
(False, False)
"""

#: Settings :func:`engine.checks.run_checks` applies around every check (timeouts) or
#: every check reads (``max_rows``): a bad value of one of these cannot be blamed on one
#: check. Values given as text (ir.config_parameter) are converted to the type here.
COMMON_DEFAULTS = {
    "statement_timeout_ms": 5000,  # each query of a check is cancelled after this
    "lock_timeout_ms": 1000,  # a check never queues behind a lock longer than this
    "max_rows": 50,  # at most this many subjects per check
}
COMMON_SETTINGS = tuple(COMMON_DEFAULTS)

#: check key -> function; the keys are the ``check`` of data/patterns.json.
CHECKS = {}
#: check key -> the settings it reads besides :data:`COMMON_SETTINGS`, so that a bad
#: value stops only the checks that use it.
CHECK_SETTINGS = {}
#: setting -> default. ``settings`` passed to a check override them by key.
DEFAULTS = dict(COMMON_DEFAULTS)

#: setting -> the first check that declared it (to name it when a default differs).
_DECLARED_BY = {key: "(common)" for key in COMMON_DEFAULTS}


def check(key, settings=None):
    """Register the decorated function as the check *key* reading *settings*.

    *settings* maps each setting the check reads (besides
    :data:`COMMON_SETTINGS`) to its default. Returns the function itself,
    with ``check_key`` and ``settings`` set on it.
    """
    settings = dict(settings or {})

    def register(function):
        expected = "check_%s" % key
        if function.__name__ != expected:
            raise ValueError("check %s: its function must be named %s, not %s"
                             % (key, expected, function.__name__))
        if key in CHECKS:
            raise ValueError("check %s is registered twice" % key)
        for name, default in settings.items():
            if name in COMMON_DEFAULTS:
                raise ValueError("check %s: %s is a common setting" % (key, name))
            if name in DEFAULTS and DEFAULTS[name] != default:
                raise ValueError("check %s: setting %s defaults to %r, but to %r for %s" % (
                    key, name, default, DEFAULTS[name], _DECLARED_BY[name]))
        for name, default in settings.items():
            DEFAULTS.setdefault(name, default)
            _DECLARED_BY.setdefault(name, key)
        CHECKS[key] = function
        CHECK_SETTINGS[key] = tuple(settings)
        function.check_key = key
        function.settings = settings
        return function

    return register


def unregister(key):
    """Forget the check *key* and the settings no other check reads (for tests)."""
    CHECKS.pop(key, None)
    names = CHECK_SETTINGS.pop(key, ())
    still_read = {name for keys in CHECK_SETTINGS.values() for name in keys}
    for name in names:
        if name not in still_read:
            DEFAULTS.pop(name, None)
            _DECLARED_BY.pop(name, None)


def resolve_settings(settings=None):
    """:data:`DEFAULTS` overridden by *settings*, converted to the defaults' types.

    Unknown keys are kept (a check of a newer engine may use them); empty
    values keep the default.

    >>> s = resolve_settings({"max_rows": "10", "cron_stuck_minutes": "90", "x": 1,
    ...                       "deadlocks_warn": None})
    >>> s["max_rows"], s["cron_stuck_minutes"], s["x"], s["deadlocks_warn"]
    (10, 90.0, 1, 1)
    >>> resolve_settings({"max_rows": "many"})
    Traceback (most recent call last):
    ...
    ValueError: setting max_rows: 'many' is not a int
    """
    if settings is not None and settings.get("__resolved__"):
        return settings
    resolved = dict(DEFAULTS)
    for key, value in (settings or {}).items():
        if value is None or value == "":
            continue
        default = DEFAULTS.get(key)
        if default is not None and not isinstance(value, type(default)):
            kind = type(default)
            try:
                value = kind(float(value)) if kind is int else kind(value)
            except (TypeError, ValueError):
                raise ValueError(
                    "setting %s: %r is not a %s" % (key, value, kind.__name__)) from None
        resolved[key] = value
    resolved["__resolved__"] = True
    return resolved


def split_settings(settings):
    """Check each setting on its own: ``(usable settings, {key: error line})``.

    :func:`resolve_settings` refuses a whole dict for one bad value; a caller
    reading settings typed by a person (ir.config_parameter) uses this
    instead, keeps the good values and reports the bad ones.

    >>> good, bad = split_settings({"max_rows": "10", "idle_in_transaction_warn_minutes": "soon"})
    >>> good
    {'max_rows': '10'}
    >>> bad
    {'idle_in_transaction_warn_minutes': "setting idle_in_transaction_warn_minutes: 'soon' \
is not a float"}
    """
    good, bad = {}, {}
    for key, value in (settings or {}).items():
        try:
            resolve_settings({key: value})
        except ValueError as exc:
            bad[key] = str(exc)
        else:
            good[key] = value
    return good, bad


def blocked_checks(bad_settings, names=None):
    """``{check: [error, ...]}``: the checks of *names* that read a bad setting.

    Settings of :data:`COMMON_SETTINGS` block nothing: the caller uses their
    defaults (every check would stop otherwise).

    >>> blocked_checks({"ignore_applications": "x", "max_rows": "y"},
    ...                ["pg_long_query", "cron_failing", "pg_idle_in_transaction"])
    {'pg_long_query': ['x'], 'pg_idle_in_transaction': ['x']}
    """
    names = list(CHECKS) if names is None else list(names)
    blocked = {}
    for name in names:
        errors = [bad_settings[key] for key in CHECK_SETTINGS.get(name, ())
                  if key in bad_settings]
        if errors:
            blocked[name] = errors
    return blocked
