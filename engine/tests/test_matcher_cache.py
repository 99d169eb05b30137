"""Pattern databases are compiled once per pattern set, and their serialized
copy in the cache folder is only used when it is ours and intact (issue 14)."""

import os
import tempfile

import pytest

from engine import matcher as matcher_module
from engine.matcher import Matcher, prepare_cache_dir
from engine.patterns import PatternSet
from tools.testing import run_as

PATTERNS = [
    {"type": "db_deadlock", "severity": "high", "regex": r"deadlock detected"},
    {"type": "worker_memory_limit", "severity": "medium",
     "regex": r"virtual memory limit \((?P<limit>\d+)\) reached"},
]
needs_hyperscan = pytest.mark.skipif(matcher_module.hyperscan is None,
                                     reason="hyperscan is not installed here")


def patterns(extra=()):
    return PatternSet.from_entries(PATTERNS + list(extra)).patterns


@pytest.fixture(autouse=True)
def fresh_process_cache(monkeypatch):
    monkeypatch.setattr(matcher_module, "_compiled", {})


@pytest.fixture
def compiles(monkeypatch):
    """Count hyperscan compiles (in this process: the child compile is off)."""
    calls = []
    real = matcher_module._compile_hyperscan
    monkeypatch.setattr(matcher_module, "_compile_in_child", lambda sources: None)
    monkeypatch.setattr(matcher_module, "_compile_hyperscan",
                        lambda sources: calls.append(len(sources)) or real(sources))
    return calls


@pytest.mark.parametrize("backend", ["hyperscan", "re2", "re"])
def test_one_compile_per_pattern_set_and_process(backend):
    if not matcher_module._available(backend):
        pytest.skip(f"{backend} is not installed here")
    first, second = Matcher(patterns(), backend=backend), Matcher(patterns(), backend=backend)
    assert first._prefilter is second._prefilter
    changed = Matcher(patterns([{"type": "x_new", "severity": "low", "regex": "brand new"}]),
                      backend=backend)
    assert changed._prefilter is not first._prefilter


@needs_hyperscan
def test_the_serialized_database_is_loaded_instead_of_compiled(tmp_path, compiles):
    folder = prepare_cache_dir(str(tmp_path / "cache"))
    Matcher(patterns(), backend="hyperscan", cache_dir=folder)
    assert len(compiles) == 1
    [name] = os.listdir(folder)
    assert os.stat(os.path.join(folder, name)).st_mode & 0o777 == 0o600
    matcher_module._compiled.clear()  # a new process
    matcher = Matcher(patterns(), backend="hyperscan", cache_dir=folder)
    assert len(compiles) == 1
    assert [hit[1] for hit in matcher.hits(b"x deadlock detected\n")] == [0]


@needs_hyperscan
def test_a_tampered_database_is_never_deserialized(tmp_path, compiles):
    folder = prepare_cache_dir(str(tmp_path / "cache"))
    Matcher(patterns(), backend="hyperscan", cache_dir=folder)
    [name] = os.listdir(folder)
    path = os.path.join(folder, name)
    data = bytearray(open(path, "rb").read())
    data[-10] ^= 0xFF  # one byte of the serialized database
    with open(path, "wb") as handle:
        handle.write(data)
    matcher_module._compiled.clear()
    Matcher(patterns(), backend="hyperscan", cache_dir=folder)
    assert len(compiles) == 2  # refused, compiled again, and written back whole
    matcher_module._compiled.clear()
    Matcher(patterns(), backend="hyperscan", cache_dir=folder)
    assert len(compiles) == 2


@needs_hyperscan
def test_a_symlink_in_place_of_the_database_is_not_followed(tmp_path, compiles):
    good = prepare_cache_dir(str(tmp_path / "good"))
    Matcher(patterns(), backend="hyperscan", cache_dir=good)
    [name] = os.listdir(good)
    folder = prepare_cache_dir(str(tmp_path / "cache"))
    os.symlink(os.path.join(good, name), os.path.join(folder, name))
    matcher_module._compiled.clear()
    Matcher(patterns(), backend="hyperscan", cache_dir=folder)
    assert len(compiles) == 2


def test_a_cache_folder_another_user_controls_is_not_used(tmp_path):
    # An unprivileged user makes the folder it would like root to trust.
    base = tempfile.mkdtemp(prefix="auto_heal-cache-", dir="/tmp")
    os.chmod(base, 0o777)
    try:
        planted = os.path.join(base, "planted")

        def plant():
            os.mkdir(planted, 0o755)
            return "ok"

        assert run_as("nobody", plant) == "ok"
        if os.geteuid() == 0:
            assert prepare_cache_dir(planted) is None  # not ours
        open_folder = str(tmp_path / "open")
        os.mkdir(open_folder)
        os.chmod(open_folder, 0o777)
        assert prepare_cache_dir(open_folder) is None  # writable by others
        link = str(tmp_path / "link")
        os.symlink(str(tmp_path), link)
        assert prepare_cache_dir(link) is None
        assert prepare_cache_dir(str(tmp_path / "mine")) == str(tmp_path / "mine")
    finally:
        for root, dirs, _files in os.walk(base, topdown=False):
            for entry in dirs:
                os.rmdir(os.path.join(root, entry))
        os.rmdir(base)


@needs_hyperscan
def test_threads_share_one_database_and_scan_at_once():
    import threading

    matcher = Matcher(patterns(), backend="hyperscan")
    data = b"x deadlock detected\n" * 20_000
    counts, errors = [], []

    def scan():
        try:
            for _ in range(20):
                counts.append(len(matcher.hits(data)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=scan) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert counts == [20_000] * 80
