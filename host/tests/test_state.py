import json
import os

import pytest

from engine.reader import Cursor
from host.state import State, StateError


def test_round_trip_is_atomic_and_private(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "state.json"
    s = State.load(str(path))
    s.set_cursor(
        str(tmp_path / "odoo.log"), Cursor(str(tmp_path / "odoo.log"), inode=5, offset=100, line=7)
    )
    s.save()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert os.listdir(path.parent) == ["state.json"]  # no temporary file left
    data = json.loads(path.read_text())
    assert data["version"] == 1
    loaded = State.load(str(path)).cursor(str(tmp_path / "odoo.log"))
    assert (loaded.inode, loaded.offset, loaded.line) == (5, 100, 7)
    # a relative path names the same log
    monkeypatch.chdir(tmp_path)
    assert State.load(str(path)).cursor("odoo.log").offset == 100


@pytest.mark.parametrize(
    "content, message",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00junk", "not valid JSON"),
        (b"[1, 2]", "must hold"),
        (b'{"cursors": {"/x.log": 3}}', "not an object"),
        (b'{"cursors": {"/x.log": {"path": "/x.log", "offset": -4}}}', "offset must be an integer"),
    ],
)
def test_broken_state_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(StateError, match=message):
        State.load(str(path))


def test_empty_or_missing_state_is_empty(tmp_path):
    assert State.load(str(tmp_path / "none.json")).cursors == {}
    (tmp_path / "empty.json").write_text("")
    assert State.load(str(tmp_path / "empty.json")).cursors == {}
