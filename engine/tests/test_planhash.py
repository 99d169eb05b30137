"""The plan hash on real plans: remove_deprecated_cron_fields on real files, through
the runner. An unchanged plan hashes the same (a file touched, rewritten with the same
bytes); a changed file, another parameter or another root changes it; a run whose plan
changed since it was approved stops as stale and leaves the file as it is."""

import json
import os

import pytest

from engine.actions import Context
from engine.actions.runner import execute
from engine.audit import AuditLog
from engine.planhash import content_diff, plan_hash
from tools.samples import CRON_XML

ACTION = "remove_deprecated_cron_fields"
@pytest.fixture
def cron(tmp_path):
    path = tmp_path / "addons" / "legacy" / "data" / "cron.xml"
    path.parent.mkdir(parents=True)
    path.write_bytes(CRON_XML)
    return path


@pytest.fixture
def context(tmp_path):
    (tmp_path / "backups").mkdir()
    return Context(actor="test", audit=AuditLog(str(tmp_path / "audit.jsonl")),
                   backup_dir=str(tmp_path / "backups"), roots=(str(tmp_path / "addons"),))


def planned(context, cron, **params):
    record = execute(ACTION, context, dict({"paths": [str(cron)]}, **params), dry_run=True)
    assert record.state == "planned", record.error
    return record


def test_an_unchanged_plan_hashes_the_same(context, cron):
    first = planned(context, cron)
    assert first.plan_hash == plan_hash(first.plan, first.params)
    os.utime(cron, ns=(1, 1))  # touched: another mtime
    assert planned(context, cron).plan_hash == first.plan_hash
    cron.unlink()
    cron.write_bytes(CRON_XML)  # rewritten: another inode, the same bytes
    again = planned(context, cron)
    assert again.plan["details"]["files"][0]["before"] != first.plan["details"]["files"][0][
        "before"]
    assert again.plan_hash == first.plan_hash


def test_what_the_plan_depends_on_changes_its_hash(context, cron, tmp_path):
    first = planned(context, cron)
    cron.write_bytes(CRON_XML.replace(b"utf-8", b"UTF-8"))  # outside the diff context
    changed = planned(context, cron)
    assert changed.plan["diff"].splitlines()[2:] == first.plan["diff"].splitlines()[2:]
    assert changed.plan_hash != first.plan_hash
    assert '"sha256_before"' in content_diff(first.plan, changed.plan)
    cron.write_bytes(CRON_XML)
    other_root = planned(context, cron, roots=[str(tmp_path / "addons" / "legacy")])
    assert other_root.plan_hash != first.plan_hash


def test_a_run_whose_plan_changed_since_approval_is_stale_and_touches_nothing(
        context, cron, tmp_path):
    approved = planned(context, cron).plan_hash
    changed = CRON_XML.replace(b"<odoo>\n", b"<odoo>\n    <!-- edited -->\n")
    cron.write_bytes(changed)
    record = execute(ACTION, context, {"paths": [str(cron)]}, approved_hash=approved)
    assert record.state == "stale"
    assert "the plan changed since it was approved" in record.error
    assert cron.read_bytes() == changed
    assert not os.listdir(tmp_path / "backups")
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [a["result"] for a in audit] == ["planned", "planned", "stale"]
    assert audit[-1]["details"]["approved_hash"] == approved
    assert audit[-1]["details"]["plan_hash"] == record.plan_hash != approved

    record = execute(ACTION, context, {"paths": [str(cron)]}, approved_hash=record.plan_hash)
    assert record.state == "done", record.error
    assert b"numbercall" not in cron.read_bytes()
    # done now: nothing to change, whatever was approved
    again = execute(ACTION, context, {"paths": [str(cron)]}, approved_hash=approved)
    assert again.state == "noop"
