"""engine.watchdog decisions and engine.probes on real processes."""

import os
import signal
import subprocess
import sys
import time

import pytest

from engine.budget import BudgetPolicy
from engine.probes import find_pids, probe_process
from engine.watchdog import (
    FAILING,
    OK,
    UNKNOWN,
    Observation,
    ProbeSpec,
    ProbeTracker,
    RestartPolicy,
    decide_action,
)

UP = dict(postgres=OK, process_alive=True, startup_done=True, liveness=OK, readiness=OK)


@pytest.mark.parametrize("changes, action, healthy", [
    ({}, "none", True),
    ({"postgres": FAILING}, "restart_postgresql", False),
    # dependencies first: PostgreSQL down beats everything Odoo shows
    ({"postgres": FAILING, "process_alive": False, "liveness": FAILING},
     "restart_postgresql", False),
    ({"process_alive": False}, "restart_odoo", False),
    ({"process_alive": False, "process_zombie": True}, "restart_odoo", False),
    ({"liveness": FAILING}, "restart_odoo", False),
    # a wrong signal restarts nothing
    ({"readiness": FAILING}, "alert", False),
    ({"startup_done": False, "startup": UNKNOWN, "liveness": FAILING}, "none", False),
    ({"startup_done": False, "startup": FAILING}, "restart_odoo", False),
    ({"postgres": UNKNOWN}, "none", True),  # no PostgreSQL probe configured
    ({"process_alive": None}, "none", True),  # no process probe configured
    ({"liveness": UNKNOWN}, "none", False),
])
def test_decisions(changes, action, healthy):
    decision = decide_action(Observation(**dict(UP, **changes)))
    assert (decision.action, decision.healthy) == (action, healthy), decision.reason


def test_zombie_and_dead_say_which():
    zombie = decide_action(Observation(**dict(UP, process_alive=False, process_zombie=True)))
    dead = decide_action(Observation(**dict(UP, process_alive=False)))
    assert "zombie" in zombie.reason and "not running" in dead.reason


def test_restart_delays_grow_to_the_cap_and_escalation_survives_a_round_trip():
    policy = RestartPolicy(BudgetPolicy(max_runs=5, window=3600, first_delay=10, factor=2,
                                        max_delay=30), healthy_reset=300)
    now, waits = 0.0, []
    for _ in range(5):
        while not policy.may_restart(now).allowed:
            now += 1
        waits.append(now - (policy.restarts[-1] if policy.restarts else 0))
        policy.record_restart(now)
    assert waits[1:] == [10, 20, 30, 30]  # 10, 20, 40 capped at 30
    verdict = policy.may_restart(now + 1000)
    assert (verdict.allowed, verdict.escalate, policy.escalated) == (False, True, True)
    again = RestartPolicy.from_dict(policy.to_dict())
    assert again.escalated and again.restarts == policy.restarts
    assert not again.may_restart(now + 10**6).allowed  # only a person resets it
    again.reset()
    assert again.may_restart(now + 10**6).allowed


def test_a_healthy_period_forgets_restarts_but_not_an_interruption():
    policy = RestartPolicy(BudgetPolicy(max_runs=2, window=10**6, first_delay=0),
                           healthy_reset=100)
    policy.record_restart(0)
    policy.record_healthy(10)
    policy.record_unhealthy()  # a blip: the healthy period starts again
    policy.record_healthy(60)
    policy.record_healthy(150)
    assert policy.restarts == [0]
    policy.record_healthy(161)
    assert policy.restarts == []


def test_probe_tracker_round_trip_and_period():
    tracker = ProbeTracker(ProbeSpec("liveness", period=10, failure_threshold=2))
    assert tracker.due(0)
    tracker.observe(False, now=0, detail="timeout")
    assert not tracker.due(5) and tracker.due(10)
    copy = ProbeTracker.from_dict(tracker.to_dict())
    assert copy.observe(False, now=10) == FAILING
    assert (copy.failures, copy.last_detail) == (2, "")


@pytest.fixture
def child():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)  # ah-probe"],
                            stdin=subprocess.DEVNULL)
    yield proc
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
    proc.wait()


def test_probe_a_process_alive_stopped_and_zombie(tmp_path, child):
    pidfile = tmp_path / "odoo.pid"
    pidfile.write_text(f"{child.pid}\n")
    first = probe_process(pidfile=str(pidfile), cmdline_regex="ah-probe")
    assert (first.alive, first.zombie, first.pid, first.cpu_percent) == (True, False, child.pid,
                                                                        None)
    assert first.rss_mb > 0 and first.started
    time.sleep(0.2)
    second = probe_process(pidfile=str(pidfile))
    assert second.cpu_percent is not None and second.started == first.started
    os.kill(child.pid, signal.SIGSTOP)
    time.sleep(0.2)
    stopped = probe_process(pid=child.pid)
    assert stopped.alive and stopped.status == "stopped"  # alive: only liveness says hung
    os.kill(child.pid, signal.SIGKILL)
    time.sleep(0.2)  # not reaped yet: a zombie
    zombie = probe_process(pid=child.pid)
    assert (zombie.alive, zombie.zombie) == (True, True)
    child.wait()
    gone = probe_process(pidfile=str(pidfile))
    assert not gone.alive and "no such process" in gone.detail


def test_a_recycled_pid_in_a_stale_pidfile_is_not_odoo(tmp_path, child):
    pidfile = tmp_path / "odoo.pid"
    pidfile.write_text(f"{child.pid}\n")
    other = probe_process(pidfile=str(pidfile), cmdline_regex=r"odoo-bin|/usr/bin/odoo")
    assert not other.alive and "another program now" in other.detail
    pidfile.write_text("not a pid\n")
    assert probe_process(pidfile=str(pidfile)).detail.endswith("holds no pid")


def test_find_by_command_line(child):
    assert find_pids("ah-probe") == [child.pid]
    info = probe_process(cmdline_regex="ah-probe")
    assert info.alive and info.pid == child.pid
    assert not probe_process(cmdline_regex="no-such-program-ah").alive
