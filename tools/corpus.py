"""Read the real-world corpus in ``tests/corpus/`` (see its README.md).

Each ``*.txt`` file holds entries; an entry is a block of ``# key: value``
headers, ``# source:`` first and ``# expect:`` last, followed by the excerpt
verbatim. The excerpt runs to the next ``# source:`` line or the end of the
file; blank lines at its ends are dropped. Lines before the first entry are
comments about the file.

>>> text = '''# Real excerpts of db_deadlock.
...
... # source: https://github.com/odoo/odoo/issues/1
... # version: 16.0
... # form: record
... # expect: db_deadlock
... 2023-01-01 00:00:00,000 1 ERROR db odoo.sql_db: bad query: x
... ERROR: deadlock detected
...
... # source: https://github.com/odoo/odoo/issues/2
... # version: saas~17.2
... # lang: fr
... # form: bare
... # failure: pool-full
... # expect: none
... Connexion refusée
... '''
>>> first, second = parse_corpus(text, "x.txt")
>>> first.expect, first.version, first.band, first.lang, first.text.count("\\n")
(('db_deadlock',), '16.0', 16, 'en', 1)
>>> second.band, second.lang, second.failure, second.line
(17, 'fr', 'pool-full', 10)
>>> parse_corpus("# source: a\\n# version: 18.0\\n# form: bare\\n# expect: none\\n", "y.txt")
Traceback (most recent call last):
...
tools.corpus.CorpusError: y.txt:1: entry has no text
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS_DIR = os.path.join(_REPO_ROOT, "tests", "corpus")

#: The forms an excerpt can come in (README.md says what each one means).
FORMS = ("record", "bare", "traceback", "journald", "docker", "odoosh", "openupgrade",
         "dialog")
KEYS = ("source", "version", "lang", "form", "failure", "note", "expect")
REQUIRED = ("source", "version", "form", "expect")

_HEADER = re.compile(r"^# (?P<key>[a-z]+): ?(?P<value>.*?)\s*$")
_VERSION = re.compile(r"^(?:saas[~-])?(?P<major>\d+)\.\d+$")
_TYPE = re.compile(r"^[a-z][a-z0-9_]*$")


class CorpusError(ValueError):
    """A corpus file that does not follow the format; one line, with file:line."""


@dataclass(frozen=True)
class Entry:
    """One excerpt and what the detector must say about it."""

    path: str
    line: int
    source: str
    version: str
    form: str
    expect: tuple
    text: str
    lang: str = "en"
    failure: str = ""
    note: str = ""

    @property
    def band(self):
        """The Odoo major version as a number, or None when unknown."""
        match = _VERSION.match(self.version)
        return int(match["major"]) if match else None

    @property
    def is_none(self):
        return self.expect == ("none",)

    @property
    def ident(self):
        return f"{self.path}:{self.line}"


def _finish(path, line, headers, body):
    where = f"{path}:{line}"
    missing = [key for key in REQUIRED if not headers.get(key)]
    if missing:
        raise CorpusError(f"{where}: entry lacks # {', # '.join(missing)}")
    while body and not body[-1].strip():
        body.pop()
    while body and not body[0].strip():
        body.pop(0)
    if not body:
        raise CorpusError(f"{where}: entry has no text")
    version = headers["version"]
    if version != "unknown" and not _VERSION.match(version):
        raise CorpusError(f"{where}: version {version!r} is not like 16.0, saas~17.2 or unknown")
    form = headers["form"]
    if form not in FORMS:
        raise CorpusError(f"{where}: form {form!r} is not one of {', '.join(FORMS)}")
    expect = tuple(part.strip() for part in headers["expect"].split(","))
    if not all(_TYPE.match(part) for part in expect) or (
        "none" in expect and len(expect) > 1
    ):
        raise CorpusError(f"{where}: expect {headers['expect']!r} is not a type code list")
    return Entry(path=path, line=line, source=headers["source"], version=version, form=form,
                 expect=expect, text="\n".join(body), lang=headers.get("lang") or "en",
                 failure=headers.get("failure", ""), note=headers.get("note", ""))


def parse_corpus(text, path):
    """The entries of one corpus file's *text*; CorpusError when malformed."""
    entries, headers, body, start, in_headers = [], None, [], 0, False
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header and header["key"] == "source":
            if headers is not None:
                entries.append(_finish(path, start, headers, body))
            headers, body, start, in_headers = {"source": header["value"]}, [], number, True
            continue
        if headers is None:
            if line.strip() and not line.startswith("#"):
                raise CorpusError(f"{path}:{number}: text before the first # source: line")
            continue
        if in_headers and header:
            key = header["key"]
            if key not in KEYS:
                raise CorpusError(f"{path}:{number}: unknown header # {key}:")
            if key in headers:
                raise CorpusError(f"{path}:{number}: header # {key}: given twice")
            headers[key] = header["value"]
            in_headers = key != "expect"
            continue
        if in_headers:
            raise CorpusError(f"{path}:{number}: headers must end with # expect:")
        body.append(line)
    if headers is not None:
        entries.append(_finish(path, start, headers, body))
    return entries


def load_corpus(folder=CORPUS_DIR):
    """Every entry of every ``*.txt`` file under *folder*, in file order."""
    entries = []
    for path in sorted(glob.glob(os.path.join(folder, "*.txt"))):
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        entries.extend(parse_corpus(text, os.path.relpath(path, _REPO_ROOT)))
    return entries
