"""Match log records against every active pattern in one pass.

Two stages, so that INFO traffic costs almost nothing::

    block of records ──prefilter (all patterns at once)──> hit offsets
                                                              │
    records around the hits ──classify (Python re)──> one pattern, or unknown

The prefilter compiles all patterns into one automaton and scans a whole block
in a single call. Its backends, fastest first:

* ``hyperscan``: every pattern in one database; reports which pattern hit;
* ``re2``: one alternation of every pattern (linear time);
* ``re``: plain-word searches for each pattern's required literals (see
  :mod:`engine.literals`), then Python's own engine around the hits; always
  available.

``AUTO_HEAL_BACKEND`` (``hyperscan``, ``re2``, ``re``) picks one for a whole
process, as ``Matcher(backend=...)`` does for one matcher.

Every pattern got here through :func:`engine.linear.check_linear`: nothing
that needs backtracking to match, and nothing whose backtracking can explode,
so Python's ``re`` may classify the few records the prefilter flags, on a
bounded view of their text (:data:`engine.records.REGEX_TEXT_BYTES`).

A database is compiled once per pattern set: it is kept for the process,
keyed by a hash of the sources (the pattern version), and, given a
``cache_dir``, serialized there (hyperscan) so the next process loads it in
milliseconds. Which pattern a backend cannot take is found by halving the set,
never by one compile per pattern. Extra prefilter entries make unmatched
errors visible: an ERROR or CRITICAL record header, and in raw text a
``Traceback`` line, a bare exception line or a ParseError's XML context.

Classification follows readme/DEVELOP.md (Reading logs): the innermost cause. A specific
pattern beats a ``generic`` one (``registry_load_failed`` wraps the real
error); among specific ones, the first in the file wins. An ERROR or CRITICAL
record that matches nothing, or raw text holding a traceback (or its last
line, or a ParseError's context), is ``unknown``.

>>> from engine.patterns import PatternSet
>>> patterns = PatternSet.from_entries([
...     {"type": "cron_field_deprecated", "severity": "high",
...      "regex": r"Invalid field '(?P<field>numbercall|doall)' on model 'ir\\.cron'"},
...     {"type": "registry_load_failed", "severity": "critical", "generic": True,
...      "regex": r"Failed to (?:load registry|initialize database)"},
... ])
>>> matcher = Matcher(patterns.patterns, backend="re")
>>> from engine.records import parse_record
>>> record = parse_record(b"2026-11-29 14:40:22,045 5681 CRITICAL p odoo.service.server: "
...     b"Failed to initialize database `p`.\\nTraceback (most recent call last):\\n"
...     b"ValueError: Invalid field 'numbercall' on model 'ir.cron'")
>>> pattern, match = matcher.classify(record)
>>> pattern.type, match.group("field")
('cron_field_deprecated', 'numbercall')
>>> matcher.classify(parse_record(b"2026-11-29 14:40:22,045 5 INFO p x: fine")) is None
True
>>> matcher.classify(parse_record(b"2026-11-29 14:40:22,045 5 ERROR p x: odd"))
(None, None)

Why one module of ~600 lines: the three backends (hyperscan, RE2, re) and their
compile cache answer to one Matcher; their differences are easiest to see together.
"""

import hashlib
import importlib
import json
import os
import re
import stat as stat_module
import threading

from .literals import required_literals
from .records import LineCappedView, regex_view

BACKENDS = ("hyperscan", "re2", "re")

# Entries that make unmatched errors visible to the prefilter: an ERROR or
# CRITICAL header, and a bare traceback. Python's re gets plain literals, which
# it finds at memory speed; classification checks the level and line start.
_ERROR_HEADER = r"\d\d:\d\d:\d\d,\d{3} \d+ (?:ERROR|CRITICAL) "
# Raw text (no record header) is an error when it holds a traceback (anywhere in a
# line: a dialog pasted on one line, syslog's #012), a bare exception line, or the
# XML context of a ParseError (odoo/tools/convert.py); classification checks the level.
_TRACEBACK_LINE = r"Traceback \(most recent call last\):"
_EXCEPTION_LINE = r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception):"
_PARSE_ERROR = r"while parsing [^\n]+:\d+, (?:near|somewhere inside)"
_SENTINELS = [_ERROR_HEADER, _TRACEBACK_LINE, _EXCEPTION_LINE, _PARSE_ERROR]
_LITERAL_SENTINELS = [r" ERROR ", r" CRITICAL ", r"Traceback \(most recent call last\):",
                      r"Error:", r"Exception:", r"while parsing "]
_TRACEBACK_RE = re.compile("|".join(_SENTINELS[1:]), re.MULTILINE)
_NAMED_GROUP = re.compile(r"\(\?P<[A-Za-z_]\w*>")
_UNKNOWN_LEVELS = ("ERROR", "CRITICAL")

#: A serialized database larger than this is not read (nor written).
MAX_CACHE_BYTES = 64 << 20
_CACHE_MAGIC = b"auto_heal hyperscan database 1\n"

_compiled = {}  # (backend, digest) -> prefilter; one compile per pattern set per process
_compiled_lock = threading.Lock()

# The optional accelerators are imported when first needed: a watchdog that
# only probes never pays their memory. ``matcher.hyperscan`` / ``matcher.re2``
# are the modules, or None when they are not installed.
_LIBRARIES = {"hyperscan": "hyperscan", "re2": "re2"}
_loaded = {}


def _library(name):
    if name not in _loaded:
        try:
            _loaded[name] = importlib.import_module(_LIBRARIES[name])
        except ImportError:  # pragma: no cover - depends on the host
            _loaded[name] = None
    return _loaded[name]


def __getattr__(name):
    if name in _LIBRARIES:
        return _library(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _prefilter_source(regex):
    """A pattern rewritten for the prefilter: no names, one hit per line.

    Appending ``[^\\n]*$`` makes every hit end at the end of its line, so a
    pattern ending in ``.*`` reports one hit per line, not one per byte.
    """
    return "(?:" + _NAMED_GROUP.sub("(?:", regex) + ")[^\n]*$"


#: Changes when the way sources are compiled changes (flags), so no database
#: compiled the old way is taken from a cache.
COMPILE_FORMAT = 2


def sources_digest(backend, sources):
    """The key of one compiled pattern set: backend, library version, sources."""
    version = getattr(_library("hyperscan"), "__version__", "") if backend == "hyperscan" else ""
    text = json.dumps([backend, version, COMPILE_FORMAT, list(sources)], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _accepted_by(compile_all, sources):
    """``(compiled, indexes)``: *sources* that *compile_all* accepts, found by halving.

    One compile when all are fine; about 2·log2(n) more per refused source.
    """
    def split(indexes):
        if not indexes:
            return []
        try:
            compile_all([sources[i] for i in indexes])
            return indexes
        except Exception:  # noqa: BLE001 - each library raises its own error type
            if len(indexes) == 1:
                return []
            middle = len(indexes) // 2
            return split(indexes[:middle]) + split(indexes[middle:])
    everything = list(range(len(sources)))
    try:
        return compile_all(sources), everything
    except Exception:  # noqa: BLE001
        accepted = split(everything)
    return (compile_all([sources[i] for i in accepted]) if accepted else None), accepted


def _compile_hyperscan(expressions):
    hyperscan = _library("hyperscan")
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    encoded = [s.encode("utf-8") for s in expressions]
    # An expression naming a non-ASCII character is read as UTF-8: in byte mode
    # "[^“]" would refuse the bytes of every other multibyte character.
    flags = [hyperscan.HS_FLAG_MULTILINE | (hyperscan.HS_FLAG_UTF8 if not s.isascii() else 0)
             for s in expressions]
    database.compile(expressions=encoded, ids=list(range(len(encoded))),
                     elements=len(encoded), flags=flags)
    return database


class _HyperscanPrefilter:
    name = "hyperscan"

    def __init__(self, sources, cache_dir=None):
        self.digest = sources_digest(self.name, sources)
        cached = _load_cached(cache_dir, self.digest) if cache_dir else None
        if cached is not None:
            self.database, self.ids = cached
            return
        compiled = _compile_in_child(sources)
        if compiled is None:  # no fork here, or the child failed: compile in-process
            compiled = _accepted_by(_compile_hyperscan, sources)
        self.database, self.ids = compiled
        if cache_dir and self.database is not None:
            _store_cached(cache_dir, self.digest, self.database, self.ids)

    def _scratch(self):
        """A scratch space per thread: one database, shared by the threads of a
        process (Odoo's cron workers), may not share one scratch. A thread id
        is reused only once its thread has ended, so is its scratch."""
        scratches = self.__dict__.setdefault("_scratches", {})
        thread = threading.get_ident()
        scratch = scratches.get(thread)
        if scratch is None:
            scratch = scratches[thread] = _library("hyperscan").Scratch(self.database)
        return scratch

    def hits(self, data):
        if self.database is None:
            return []
        found = []
        append = found.append
        ids = self.ids

        def on_match(pattern_id, start, end, flags, context):
            append((end, ids[pattern_id]))

        self.database.scan(data, match_event_handler=on_match, scratch=self._scratch())
        return found


def prepare_cache_dir(path):
    """*path* made (mode 0700) and checked as a folder of ours, or None.

    A folder that is a symlink, someone else's, or writable by others is not
    used: the cache then stays in memory.
    """
    if not path:
        return None
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError:
        return None
    if (not stat_module.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid()
            or info.st_mode & 0o022):
        return None
    return path


def _compile_in_child(sources):
    """``(database, accepted ids)`` compiled by a forked child, or None.

    Hyperscan's compiler takes several megabytes the process would keep as
    resident memory for ever; a child compiles, sends the serialized database
    through a pipe and exits, so the watchdog stays small. The bytes are
    checked as the cache file's are (the same format, the same hash). The
    child only compiles and writes, so forking beside other threads is safe.
    """
    hyperscan = _library("hyperscan")
    if not hasattr(os, "fork"):
        return None
    digest = sources_digest("hyperscan", sources)
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    if pid == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            os.close(read_end)
            database, ids = _accepted_by(_compile_hyperscan, sources)
            if database is not None:
                payload = _cache_payload(digest, database, ids)
                view = memoryview(payload)
                while view:
                    view = view[os.write(write_end, view):]
                status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as handle:
        while True:
            chunk = handle.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            if sum(map(len, chunks)) > MAX_CACHE_BYTES:
                break
    _, status = os.waitpid(pid, 0)
    if status != 0 or hyperscan is None:
        return None
    return _parse_payload(b"".join(chunks), digest)


def _cache_path(cache_dir, digest):
    return os.path.join(cache_dir, f"hyperscan-{digest[:32]}.db")


def _load_cached(cache_dir, digest):
    """``(database, accepted ids)`` serialized under *cache_dir*, or None.

    The cache folder is the watchdog's own (root's); still, the file is opened
    without following a symlink, must be a regular file of ours, not writable
    by others, of bounded size, and its hash must match before hyperscan
    deserializes a single byte.
    """
    path = _cache_path(cache_dir, digest)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if (not stat_module.S_ISREG(info.st_mode) or info.st_size > MAX_CACHE_BYTES
                or info.st_uid != os.geteuid() or info.st_mode & 0o022):
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            raw = handle.read(MAX_CACHE_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return _parse_payload(raw, digest)


def _parse_payload(raw, digest):
    """The database and ids of a serialized payload, once its hash checks out."""
    hyperscan = _library("hyperscan")
    try:
        header, body = raw.split(b"\n\n", 1)
        magic, key, ids, checksum = header.split(b"\n")
    except ValueError:
        return None
    if (magic + b"\n" != _CACHE_MAGIC or key.decode("ascii", "replace") != digest
            or hashlib.sha256(ids + b"\n" + body).hexdigest().encode() != checksum):
        return None
    try:
        accepted = json.loads(ids.decode("ascii"))
    except ValueError:
        return None
    if not isinstance(accepted, list) or not all(isinstance(i, int) for i in accepted):
        return None
    try:
        database = hyperscan.loadb(body, hyperscan.HS_MODE_BLOCK)
        database.scratch = hyperscan.Scratch(database)
    except Exception:  # noqa: BLE001 - hyperscan.error or a bad mode: just compile again
        return None
    return database, accepted


def _cache_payload(digest, database, ids):
    body = bytes(_library("hyperscan").dumpb(database))
    ids_text = json.dumps(ids).encode("ascii")
    checksum = hashlib.sha256(ids_text + b"\n" + body).hexdigest().encode()
    return _CACHE_MAGIC + digest.encode() + b"\n" + ids_text + b"\n" + checksum + b"\n\n" + body


def _store_cached(cache_dir, digest, database, ids):
    """Write the serialized database atomically (temporary file, fsync, rename)."""
    try:
        payload = _cache_payload(digest, database, ids)
    except Exception:  # noqa: BLE001 - an old hyperscan without serialization
        return
    if len(payload) > MAX_CACHE_BYTES:
        return
    try:
        dir_fd = os.open(cache_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    name = os.path.basename(_cache_path(cache_dir, digest))
    temporary = f".{name}.{os.getpid()}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError:
        try:
            os.unlink(temporary, dir_fd=dir_fd)
        except OSError:
            pass
    finally:
        os.close(dir_fd)


def _re2_options():
    options = _library("re2").Options()
    options.max_mem = 256 << 20
    options.log_errors = False  # a refused pattern is reported by the matcher; no stderr noise
    return options


def _compile_re2(sources):
    alternation = "|".join(f"(?:{s})" for s in sources)
    return _library("re2").compile(b"(?m)" + alternation.encode("utf-8"), _re2_options())


class _Re2Prefilter:
    """One alternation of every pattern, run by RE2 in linear time."""

    name = "re2"

    def __init__(self, sources, cache_dir=None):
        self.regex, self.ids = _accepted_by(_compile_re2, sources)

    def hits(self, data):
        # The pattern id is unknown here: classification tries every pattern.
        if self.regex is None:
            return []
        return [(m.end(), None) for m in self.regex.finditer(data)]


class _PythonPrefilter:
    """Plain-word searches with ``bytes.find``, at memory speed.

    Each pattern's required literals (see :mod:`engine.literals`) are
    searched once per block; a literal that contains another one already
    searched is not searched again (its hits are among the shorter one's).
    A pattern with no usable literal runs its own regex over each line of the
    block (bounded lines: see :func:`engine.records.regex_view`).
    """

    name = "re"

    def __init__(self, sources, cache_dir=None):
        owners = {}        # literal bytes -> pattern indexes that require it
        self.regexes = []  # (index, compiled) for patterns without literals
        for index, source in enumerate(sources):
            literals = required_literals(source)
            if literals is None:
                self.regexes.append((index, re.compile(source.encode("utf-8"), re.MULTILINE)))
                continue
            for literal in literals:
                owners.setdefault(literal.encode("utf-8"), set()).add(index)
        # Shorter literals first: a longer one containing it adds its owners to it.
        self.owners = {}
        for literal in sorted(owners, key=len):
            cover = next((kept for kept in self.owners if kept in literal), None)
            if cover is None:
                self.owners[literal] = set(owners[literal])
            else:
                self.owners[cover] |= owners[literal]
        self.ids = list(range(len(sources)))

    def hits(self, data):
        found = []
        for literal, indexes in self.owners.items():
            position = data.find(literal)
            if position < 0:
                continue
            size = len(literal)
            indexes = sorted(indexes)
            while position >= 0:
                end = position + size
                found.extend((end, index) for index in indexes)
                position = data.find(literal, end)
        if self.regexes:
            view = LineCappedView(data)
            for index, regex in self.regexes:
                found.extend((view.offset(m.end()), index) for m in regex.finditer(view.data))
        return found


_PREFILTERS = {"hyperscan": _HyperscanPrefilter, "re2": _Re2Prefilter, "re": _PythonPrefilter}


def _available(name):
    if name == "re":
        return True
    return name in _LIBRARIES and _library(name) is not None


def default_backend():
    """The backend ``auto`` means: ``AUTO_HEAL_BACKEND`` if set, else the fastest here."""
    chosen = os.environ.get("AUTO_HEAL_BACKEND", "").strip()
    if chosen and chosen != "auto":
        return chosen
    return next(name for name in BACKENDS if _available(name))


class Matcher:
    """All active patterns compiled once; see the module docstring."""

    def __init__(self, patterns, backend="auto", cache_dir=None, watch=()):
        self.patterns = list(patterns)
        name = default_backend() if backend == "auto" else backend
        if not _available(name):
            raise ValueError(f"prefilter backend {name!r} is not available here; "
                             f"choose one of auto, {', '.join(BACKENDS)}")
        self.backend = name
        regexes = [p.regex for p in self.patterns]
        if name == "re":
            sources = regexes + _LITERAL_SENTINELS
        else:
            sources = [_prefilter_source(r) for r in regexes + _SENTINELS]
        # *watch*: more regexes whose hits hyperscan reports in the same pass
        # (their ids follow the sentinels); only hyperscan says which one hit.
        first_watched = len(sources)
        if name == "hyperscan" and watch:
            sources += ["(?:" + _NAMED_GROUP.sub("(?:", r) + ")" for r in watch]
        key = (name, sources_digest(name, sources), cache_dir)
        with _compiled_lock:
            prefilter = _compiled.get(key)
            if prefilter is None:
                prefilter = _PREFILTERS[name](sources, cache_dir=cache_dir)
                if len(_compiled) > 16:  # old pattern versions of a long-lived process
                    _compiled.clear()
                _compiled[key] = prefilter
        self._prefilter = prefilter
        refused = set(range(len(sources))) - set(prefilter.ids)
        # Every pattern passed engine.linear, so the engines take them all; one
        # that a library still refuses (its own limits) is searched by its
        # required literals with the re prefilter.
        self._fallback = (_PythonPrefilter([sources[i] if name == "re" else regexes[i]
                                            for i in sorted(refused) if i < len(regexes)])
                          if refused else None)
        self._fallback_ids = sorted(i for i in refused if i < len(regexes))
        self.generic = [p.generic for p in self.patterns]
        #: The ids of the *watch* regexes, when every one is in the database:
        #: then a record without one of them among its hits matches none of them.
        watched = range(first_watched, len(sources))
        self.watched = (frozenset(watched) if watched and not refused.intersection(watched)
                        else None)

    @property
    def slow_patterns(self):
        """Types of the patterns the fast backend could not take."""
        return [self.patterns[i].type for i in self._fallback_ids]

    def hits(self, data):
        """Sorted ``(end_offset, pattern_index or None)`` of prefilter hits.

        Indexes past the patterns are the sentinels (error header, traceback).
        """
        found = self._prefilter.hits(data)
        if self._fallback is not None:
            ids = self._fallback_ids
            found.extend((end, ids[local]) for end, local in self._fallback.hits(data)
                         if local < len(ids))
        found.sort(key=_first)
        return found

    def hit_records(self, data):
        """Yield ``(start, end, candidate ids or None)`` of records with hits.

        *data* starts at a record boundary. ``None`` means every pattern is a
        candidate (the regex backends do not say which one hit). A record is
        reported once, however many hits it holds and however long it is.
        """
        from .records import record_end, record_start

        current = None
        floor = 0
        for end_offset, index in self.hits(data):
            position = max(end_offset - 1, 0)
            if current is not None and position < current[1]:
                if index is None or current[2] is None:
                    current[2] = None
                else:
                    current[2].add(index)
                continue
            if current is not None:
                yield tuple(current)
                floor = current[1]
            start = record_start(data, position, floor)
            current = [start, record_end(data, position), None if index is None else {index}]
        if current is not None:
            yield tuple(current)

    def classify(self, record, candidates=None, text=None):
        """Return ``(pattern, match)`` for the best pattern, ``(None, None)``
        for an unknown error, or None when the record is not a finding.

        *text* is what the patterns search (default: the record's bounded
        regex view).
        """
        if text is None:
            text = regex_view(record.text)
        best = generic = None
        level = record.level
        patterns = self.patterns
        indexes = range(len(patterns)) if candidates is None else sorted(
            i for i in candidates if i < len(patterns))
        for index in indexes:
            pattern = patterns[index]
            if pattern.levels and level is not None and level not in pattern.levels:
                continue
            match = pattern.compiled.search(text)
            if match is None:
                continue
            if not pattern.generic:
                best = (pattern, match)
                break
            if generic is None:
                generic = (pattern, match)
        if best or generic:
            return best or generic
        return self._unknown(record, text)

    @staticmethod
    def _unknown(record, text=None):
        if record.level in _UNKNOWN_LEVELS or (
            record.level is None and _TRACEBACK_RE.search(text or record.text)
        ):
            return None, None
        return None


def _first(hit):
    return hit[0]
