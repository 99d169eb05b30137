"""What the host watchdog decides, without doing it: probes, restarts, escalation.

The monitor loop (``bin/auto-heal monitor``) measures, then asks this module
what to do. Semantics follow Kubernetes probes and systemd restart limits;
where they disagree, the choice is what an operator woken at night wants:

* **Probes** (:class:`ProbeSpec`, :class:`ProbeTracker`): each has a period, a
  timeout, a failure threshold and a success threshold. A probe turns
  ``failing`` only after ``failure_threshold`` failures in a row, and ``ok``
  again only after ``success_threshold`` successes in a row, so one slow answer
  restarts nothing.
* **Startup** is its own probe: while Odoo loads its registry or upgrades
  modules (minutes), liveness is not judged and Odoo is not killed. Only a
  startup that fails ``failure_threshold`` times (``period`` apart) restarts it.
* **Dependencies first**: when PostgreSQL is down, heal PostgreSQL and leave
  Odoo alone; Odoo's own errors are then a symptom.
* **Hung Odoo**: the process is alive but liveness (``/web/health``) has failed
  its threshold: restart it.
* **Readiness alone never kills**: ``/web/health?db_server_status=1`` failing
  while liveness passes means Odoo cannot reach its database; that is reported,
  and PostgreSQL is judged by its own probe.
* **Restart policy** (:class:`RestartPolicy`): at most N restarts within a
  window, with growing delays (10, 20, 40 s ... up to a cap); the counters reset
  after a healthy period; over budget it stops restarting, alerts, and stays
  *escalated* until a person runs ``bin/auto-heal reset``.

>>> spec = ProbeSpec("liveness", period=10, timeout=5, failure_threshold=3)
>>> tracker = ProbeTracker(spec)
>>> [tracker.observe(False, now=t) for t in (0, 10, 20)]
['unknown', 'unknown', 'failing']
>>> tracker.observe(True, now=30)
'ok'
"""

from dataclasses import asdict, dataclass, field

from .budget import BudgetDecision, BudgetPolicy, decide

OK, FAILING, UNKNOWN = "ok", "failing", "unknown"


@dataclass(frozen=True)
class ProbeSpec:
    """How often a probe runs and how many results in a row change its status."""

    name: str
    period: float = 10.0
    timeout: float = 5.0
    failure_threshold: int = 3
    success_threshold: int = 1


@dataclass
class ProbeTracker:
    """Consecutive results of one probe, and the status they add up to.

    >>> t = ProbeTracker(ProbeSpec("pg", failure_threshold=2, success_threshold=2))
    >>> [t.observe(ok, now=n) for n, ok in enumerate([False, False, True, True])]
    ['unknown', 'failing', 'failing', 'ok']
    """

    spec: ProbeSpec
    status: str = UNKNOWN
    failures: int = 0
    successes: int = 0
    last_run: float | None = None
    last_detail: str = ""
    changed_at: float | None = None

    def due(self, now):
        """Whether the probe's period has passed since its last run."""
        return self.last_run is None or now - self.last_run >= self.spec.period

    def observe(self, ok, now, detail=""):
        self.last_run = now
        self.last_detail = detail
        if ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= self.spec.success_threshold and self.status != OK:
                self._set(OK, now)
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= self.spec.failure_threshold and self.status != FAILING:
                self._set(FAILING, now)
        return self.status

    def _set(self, status, now):
        self.status = status
        self.changed_at = now

    def reset(self):
        self.status, self.failures, self.successes, self.changed_at = UNKNOWN, 0, 0, None

    def to_dict(self):
        data = asdict(self)
        data["spec"] = asdict(self.spec)
        return data

    @classmethod
    def from_dict(cls, data):
        data = dict(data)
        data["spec"] = ProbeSpec(**data["spec"])
        return cls(**data)


@dataclass
class RestartPolicy:
    """Restart budget of one service, kept across watchdog restarts.

    >>> policy = RestartPolicy(BudgetPolicy(max_runs=3, window=600, first_delay=10,
    ...                                     max_delay=40), healthy_reset=300)
    >>> policy.may_restart(now=0).allowed
    True
    >>> policy.record_restart(now=0)
    >>> policy.may_restart(now=5).reason
    'too soon: run 2 waits 10 s after the previous one; 5 s left'
    >>> policy.record_restart(now=10); policy.record_restart(now=40)
    >>> decision = policy.may_restart(now=100)
    >>> decision.allowed, policy.escalated
    (False, True)
    >>> policy.record_healthy(now=1000)    # healthy for long: counters reset,
    >>> policy.may_restart(now=1000).allowed   # but escalation waits for a person
    False
    >>> policy.reset(); policy.may_restart(now=1000).allowed
    True
    """

    budget: BudgetPolicy = field(default_factory=lambda: BudgetPolicy(
        max_runs=3, window=900, first_delay=10, factor=2, max_delay=300))
    #: Seconds of continuous health after which earlier restarts are forgotten.
    healthy_reset: float = 600.0
    restarts: list = field(default_factory=list)
    escalated: bool = False
    escalated_reason: str = ""
    healthy_since: float | None = None

    def may_restart(self, now):
        """A :class:`engine.budget.BudgetDecision`; over budget escalates."""
        if self.escalated:
            return BudgetDecision(allowed=False, escalate=True,
                                  reason=f"escalated: {self.escalated_reason}; "
                                         "run `bin/auto-heal reset` once it is handled")
        decision = decide(self.budget, self.restarts, now)
        if decision.escalate:
            self.escalated = True
            self.escalated_reason = decision.reason
        return decision

    def record_restart(self, now):
        self.restarts.append(now)
        self.healthy_since = None

    def record_healthy(self, now):
        """Called each cycle the service is healthy; forgets old restarts."""
        if self.healthy_since is None:
            self.healthy_since = now
        if now - self.healthy_since >= self.healthy_reset:
            self.restarts = []

    def record_unhealthy(self):
        self.healthy_since = None

    def reset(self):
        """What ``bin/auto-heal reset`` does: a person took over."""
        self.restarts, self.escalated, self.escalated_reason = [], False, ""
        self.healthy_since = None

    def to_dict(self):
        data = asdict(self)
        data["budget"] = asdict(self.budget)
        return data

    @classmethod
    def from_dict(cls, data):
        data = dict(data)
        data["budget"] = BudgetPolicy(**data["budget"])
        return cls(**data)


@dataclass(frozen=True)
class Observation:
    """What one monitor cycle measured. None means "not measured"."""

    postgres: str = UNKNOWN        # probe status
    startup_done: bool = False     # the startup probe succeeded once since the last start
    startup: str = UNKNOWN         # failing = it did not succeed within its threshold
    liveness: str = UNKNOWN
    readiness: str = UNKNOWN
    process_alive: bool | None = None
    process_zombie: bool = False


@dataclass(frozen=True)
class Decision:
    """What to do now, and why (for the log and the audit)."""

    action: str                    # "none", "restart_postgresql", "restart_odoo", "alert"
    reason: str
    healthy: bool = False


def decide_action(seen):
    """The one thing to do this cycle, dependencies first.

    >>> decide_action(Observation(postgres=FAILING, liveness=FAILING)).action
    'restart_postgresql'
    >>> decide_action(Observation(postgres=OK, process_alive=False)).action
    'restart_odoo'
    >>> d = decide_action(Observation(postgres=OK, process_alive=True, startup_done=False,
    ...                               startup=UNKNOWN, liveness=FAILING))
    >>> d.action, d.reason
    ('none', 'Odoo is starting (loading its registry); liveness is not judged yet')
    >>> decide_action(Observation(postgres=OK, process_alive=True, startup=FAILING)).action
    'restart_odoo'
    >>> decide_action(Observation(postgres=OK, process_alive=True, startup_done=True,
    ...                           liveness=FAILING)).action
    'restart_odoo'
    >>> d = decide_action(Observation(postgres=OK, process_alive=True, startup_done=True,
    ...                               liveness=OK, readiness=FAILING))
    >>> d.action
    'alert'
    >>> decide_action(Observation(postgres=OK, process_alive=True, startup_done=True,
    ...                           liveness=OK, readiness=OK)).healthy
    True
    """
    if seen.postgres == FAILING:
        return Decision("restart_postgresql",
                        "PostgreSQL does not answer; Odoo's failures are a symptom, "
                        "so Odoo is left alone")
    if seen.process_alive is False or seen.process_zombie:
        state = "a zombie" if seen.process_zombie else "not running"
        return Decision("restart_odoo", f"the Odoo process is {state}")
    if not seen.startup_done:
        # The startup probe only turns failing after its (long) threshold.
        if seen.startup == FAILING:
            return Decision("restart_odoo", "Odoo did not finish starting in time")
        return Decision("none", "Odoo is starting (loading its registry); liveness is not "
                                "judged yet")
    if seen.liveness == FAILING:
        return Decision("restart_odoo", "Odoo's process is alive but /web/health does not "
                                        "answer: hung")
    if seen.readiness == FAILING:
        return Decision("alert", "Odoo answers but cannot reach its database "
                                 "(readiness failing); not a reason to restart Odoo")
    healthy = seen.liveness == OK and seen.postgres in (OK, UNKNOWN)
    return Decision("none", "healthy" if healthy else "waiting for probes", healthy=healthy)
