"""readme/CLI.md's option tables and exit codes are generated from the parser."""

import pytest

from host.commands import COMMANDS
from host.commands.base import EXIT_CODES
from tools import cli_doc


def test_the_generated_sections_are_up_to_date():
    assert cli_doc.main(["--check"]) == 0, "run: python -m tools.cli_doc"


def test_every_command_and_every_option_is_in_the_readme():
    text = cli_doc.README.read_text(encoding="utf-8")
    parser = cli_doc.build_parser(["fix"])
    commands = cli_doc._subparsers(parser)
    assert len(commands) == len(COMMANDS)
    for name, sub in commands.items():
        assert cli_doc.BEGIN.format(name=f"options {name}") in text
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in text or f", {option}" in text, (name, option)
    for code, meaning in EXIT_CODES:
        assert f"| {code} | {cli_doc._cell(meaning)} |" in text


def test_a_stale_or_missing_section_makes_the_check_fail(tmp_path, monkeypatch):
    current = cli_doc.README.read_text(encoding="utf-8")
    stale = tmp_path / "CLI.md"
    begin, end = (m.format(name="options health") for m in (cli_doc.BEGIN, cli_doc.END))
    head, rest = current.split(begin)
    stale.write_text(head + begin + "\nold table\n" + rest[rest.index(end):], encoding="utf-8")
    monkeypatch.setattr(cli_doc, "README", stale)
    assert cli_doc.main(["--check"]) == 1
    assert cli_doc.main([]) == 0
    assert stale.read_text(encoding="utf-8") == current
    assert cli_doc.main(["--check"]) == 0
    # a command without its section: the check names it
    stale.write_text(current.replace(begin, "").replace(end, ""), encoding="utf-8")
    with pytest.raises(SystemExit, match="no section for options health"):
        cli_doc.main(["--check"])
