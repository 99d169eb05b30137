"""The runner on a real file action: every outcome, every audit line, budgets."""

import json
import os
import time

import pytest

from engine.actions import ActionError, Context, FixAction, Plan, Precondition, register
from engine.actions.params import DATA, Param
from engine.actions.runner import execute, rollback_run
from engine.actions.store import RunStore
from engine.audit import AuditLog
from engine.budget import BudgetPolicy
from engine.fsutil import atomic_write, backup_file, load_backup_record, restore_backup


@register
class WriteMarker(FixAction):
    """Test action: make a file hold b"fixed\\n"; params steer its failures."""

    name = "test_write_marker"
    runs_on = "host"
    params = (Param("path", "path", DATA, "the marker file", required=True),
              Param("fail", "choice", DATA, "the step that fails", choices=(
                  "apply", "verify", "rollback")))

    def plan(self, context, params):
        path = params["path"]
        current = open(path, "rb").read() if os.path.exists(path) else b""
        return Plan(self.name, path, "write the marker",
                    steps=[f"write 'fixed' to {path}"],
                    preconditions=[Precondition("file exists", os.path.exists(path))],
                    changes=current != b"fixed\n",
                    details={"fail": params.get("fail", "")})

    def backup(self, context, plan):
        return backup_file(plan.target, context.backup_dir).to_dict()

    def apply(self, context, plan, backup):
        if plan.details["fail"] == "apply":
            atomic_write(plan.target, b"half written")
            raise OSError("disk on fire")
        atomic_write(plan.target, b"broken\n" if plan.details["fail"] == "verify" else b"fixed\n")
        return "marker written"

    def verify(self, context, plan):
        data = open(plan.target, "rb").read()
        return data == b"fixed\n", f"file holds {data!r}"

    def rollback(self, context, plan, backup):
        if plan.details["fail"] == "rollback":
            raise OSError("backup unreadable")
        restore_backup(load_backup_record(backup["sidecar"]))
        return "restored"


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "target.txt"
    path.write_bytes(b"original\n")
    os.chmod(path, 0o640)
    return path


@pytest.fixture
def context(tmp_path):
    return Context(actor="test:me", audit=AuditLog(str(tmp_path / "audit.jsonl")),
                   backup_dir=str(tmp_path / "backups"))


def audit_lines(context):
    if not os.path.exists(context.audit.path):
        return []
    with open(context.audit.path) as handle:
        return [json.loads(line) for line in handle]


def test_done_run_then_second_run_is_a_noop(target, context):
    record = execute("test_write_marker", context, {"path": str(target)}, incident="fp1")
    assert record.state == "done"
    assert target.read_bytes() == b"fixed\n"
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    assert "verified: file holds b'fixed\\n'" in record.output
    lines = audit_lines(context)
    assert [(line["action"], line["result"]) for line in lines] == [
        ("test_write_marker.plan", "planned"), ("test_write_marker.apply", "applied"),
        ("test_write_marker.verify", "ok")]
    assert {line["details"]["incident"] for line in lines} == {"fp1"}
    assert {line["actor"] for line in lines} == {"test:me"}
    assert all(line["duration"] >= 0 for line in lines)
    again = execute("test_write_marker", context, {"path": str(target)})
    assert again.state == "noop"
    assert len(os.listdir(context.backup_dir)) == 2  # one copy + its sidecar: no new backup


def test_dry_run_changes_nothing(target, context):
    record = execute("test_write_marker", context, {"path": str(target)}, dry_run=True)
    assert record.state == "planned"
    assert target.read_bytes() == b"original\n"
    assert record.plan["steps"] == [f"write 'fixed' to {target}"]


@pytest.mark.parametrize("fail", ["verify", "apply"])
def test_failed_apply_or_verify_is_rolled_back_exactly(target, context, fail):
    record = execute("test_write_marker", context, {"path": str(target), "fail": fail})
    assert record.state == "rolled_back"
    assert target.read_bytes() == b"original\n"
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    assert record.error.startswith("verification failed" if fail == "verify" else "OSError")
    assert [line["result"] for line in audit_lines(context)][-1] == "rolled_back"


def test_rollback_failure_after_failed_verify_is_failed_and_escalated(target, context):
    class Broken(WriteMarker):
        name = "test_broken_everything"

        def apply(self, context, plan, backup):
            atomic_write(plan.target, b"broken\n")
            return "wrote"

        def rollback(self, context, plan, backup):
            raise OSError("backup unreadable")

    register(Broken)
    record = execute("test_broken_everything", context, {"path": str(target)})
    assert record.state == "failed"
    assert record.escalate
    assert "rollback failed: OSError: backup unreadable" in record.error


def test_blocked_precondition_touches_nothing(tmp_path, context):
    missing = tmp_path / "missing.txt"
    record = execute("test_write_marker", context, {"path": str(missing)})
    assert record.state == "blocked"
    assert record.error == "precondition failed: file exists"
    assert not missing.exists()
    assert not os.path.exists(context.backup_dir)


def test_budget_refuses_and_escalates(target, context):
    policy = BudgetPolicy(max_runs=2, window=600, first_delay=0)
    now = time.time()
    record = execute("test_write_marker", context, {"path": str(target)}, budget=policy,
                     history=[now - 100, now - 50], now=now)
    assert record.state == "refused"
    assert record.escalate
    assert "budget used up: 2 runs within 10 min" in record.error
    assert target.read_bytes() == b"original\n"
    assert audit_lines(context)[-1]["result"] == "refused"


def test_growing_delay_refuses_without_escalating(target, context):
    policy = BudgetPolicy(max_runs=5, window=600, first_delay=60)
    now = time.time()
    record = execute("test_write_marker", context, {"path": str(target)}, budget=policy,
                     history=[now - 10], now=now)
    assert (record.state, record.escalate) == ("refused", False)
    assert record.error.startswith("too soon")


def test_missing_parameter_unknown_action_and_missing_audit(target, tmp_path):
    missing = execute("test_write_marker", Context(), {})
    assert missing.state == "blocked" and "test_write_marker needs path" in missing.error
    with pytest.raises(ActionError, match="unknown fix action 'nope'"):
        execute("nope", Context(), {})
    with pytest.raises(ActionError, match="no audit log"):
        execute("test_write_marker", Context(backup_dir=str(tmp_path / "b")),
                {"path": str(target)})
    assert target.read_bytes() == b"original\n"


def test_store_rollback_by_run_id_and_history(target, context, tmp_path):
    store = RunStore(str(tmp_path / "runs"))
    record = store.save(execute("test_write_marker", context, {"path": str(target)}))
    loaded = store.load(record.run_id)
    assert loaded == record
    assert len(store.history("test_write_marker", str(target))) == 1
    rollback_run(loaded, context)
    store.save(loaded)
    assert target.read_bytes() == b"original\n"
    assert store.load(record.run_id).state == "rolled_back"
    with pytest.raises(ActionError, match="only a done run can be rolled back"):
        rollback_run(store.load(record.run_id), context)
    with pytest.raises(Exception, match="not a run id"):
        store.load("../etc/passwd")
