"""Config drift on real files: changes, broken configs, last known good."""

from engine import backup, drift


def write(path, text):
    path.write_text(text)
    return str(path)


def test_a_broken_config_stays_reported_and_last_good_is_restorable(tmp_path):
    versions = str(tmp_path / "versions")
    conf = write(tmp_path / "odoo.conf", "[options]\nworkers = 2\nadmin_passwd = s\n")
    baseline = {}
    assert drift.check([conf], baseline, versions) == []
    good = drift.mark_good(conf, baseline, versions)
    write(tmp_path / "odoo.conf", "workers = 2\n[options\n")
    first = drift.check([conf], baseline, versions)
    again = drift.check([conf], baseline, versions)
    assert [d.kind for d in first] == ["changed"]
    assert "no section headers" in first[0].parse_error
    assert [d.parse_error != "" for d in again] == [True]  # still broken: still reported
    restored = drift.last_good(conf, baseline, versions)
    assert restored.sha256 == good.sha256
    backup.restore_version(restored)
    assert open(conf).read() == "[options]\nworkers = 2\nadmin_passwd = s\n"
    assert drift.check([conf], baseline, versions)[0].parse_error == ""
    assert drift.check([conf], baseline, versions) == []


def test_missing_file_is_reported_once(tmp_path):
    versions = str(tmp_path / "versions")
    conf = write(tmp_path / "odoo.conf", "[options]\n")
    baseline = {}
    drift.check([conf], baseline, versions)
    (tmp_path / "odoo.conf").unlink()
    assert [d.kind for d in drift.check([conf], baseline, versions)] == ["missing"]
    assert drift.check([conf], baseline, versions) == []


def test_a_changed_password_shows_as_changed_but_never_in_clear(tmp_path):
    versions = str(tmp_path / "versions")
    conf = write(tmp_path / "odoo.conf", "[options]\ndb_password = first-secret\n")
    baseline = {}
    drift.check([conf], baseline, versions)
    write(tmp_path / "odoo.conf", "[options]\ndb_password = second-secret\n")
    [change] = drift.check([conf], baseline, versions)
    assert "-db_password = ***" in change.diff and "+db_password = ***" in change.diff
    assert "secret" not in change.diff.replace("db_password", "")
