"""readme/PATTERNS.md lists every alternative of data/patterns.json with its source."""

from engine.patterns import load_patterns
from engine.scanner import DEFAULT_PATTERNS
from tools import patterns_doc


def test_the_generated_section_is_up_to_date():
    assert patterns_doc.main(["--check"]) == 0, "run: python -m tools.patterns_doc"


def test_the_section_shows_every_alternative_and_its_source():
    text = patterns_doc.README.read_text(encoding="utf-8")
    for pattern in load_patterns(DEFAULT_PATTERNS).patterns:
        assert f"### `{pattern.type}`" in text
        for source in pattern.sources:
            assert patterns_doc._cell(source) in text


def test_a_changed_pattern_makes_the_check_fail(tmp_path, monkeypatch):
    stale = tmp_path / "PATTERNS.md"
    stale.write_text(f"intro\n{patterns_doc.BEGIN}\nold list\n{patterns_doc.END}\nend\n",
                     encoding="utf-8")
    monkeypatch.setattr(patterns_doc, "README", stale)
    assert patterns_doc.main(["--check"]) == 1
    assert patterns_doc.main([]) == 0
    rewritten = stale.read_text(encoding="utf-8")
    assert rewritten.startswith("intro\n") and rewritten.endswith("end\n")
    assert "old list" not in rewritten and patterns_doc.main(["--check"]) == 0
