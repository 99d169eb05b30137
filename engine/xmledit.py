"""The byte-exact XML editor: drop the ir.cron fields Odoo 18 no longer has.

A library, not an action: the ``remove_deprecated_cron_fields`` fix action
(:mod:`engine.actions.cron_fields`) plans with it, and the runner applies.

Odoo 18 removed ``numbercall`` and ``doall`` from ``ir.cron`` (compare the
field list of ``odoo/addons/base/models/ir_cron.py`` in 17.0 and 18.0: every
other field of 17.0 is still there). A module whose XML data still sets one
of them fails to install or update with ``ValueError: Invalid field
'numbercall' on model 'ir.cron'`` wrapped in a ParseError, and Odoo stops with
"Failed to initialize database". Both are removed at once: removing only the
field named in the error makes the next start fail again on the other one.

How the edit stays safe::

    raw bytes --lxml--> tree: which <field> elements to drop, and where
        |                (record model="ir.cron" under <odoo>/<openerp>/<data>)
        |
        +--byte scanner--> the byte span of every element, matched one to
        |                  one with lxml's elements (tag and line must agree)
        v
    new bytes = old bytes minus those spans (minus the whole line when the
        |       element stands alone on it): comments, encoding, quoting,
        |       blank lines and CRLF are untouched
        v
    verify: lxml parses the new bytes and its tree equals the old tree
            minus exactly the removed elements; otherwise no plan at all

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "cron.xml")
>>> with open(path, "wb") as fh:
...     _ = fh.write(b'''<odoo>
...     <record id="ir_cron_legacy" model="ir.cron">
...         <field name="name">Legacy job</field>
...         <field name="numbercall">-1</field>
...         <field name="doall" eval="False"/> <!-- keep me -->
...     </record>
... </odoo>
... ''')
>>> p = plan(path)
>>> [(r.line, r.field, r.record_id) for r in p.removals]
[(4, 'numbercall', 'ir_cron_legacy'), (5, 'doall', 'ir_cron_legacy')]
>>> print(p.new.decode())
<odoo>
    <record id="ir_cron_legacy" model="ir.cron">
        <field name="name">Legacy job</field>
        <!-- keep me -->
    </record>
</odoo>
<BLANKLINE>

The change itself is the ``remove_deprecated_cron_fields`` fix action
(:mod:`engine.actions.cron_fields`), run by the runner: backup, a write on
descriptors, verify, rollback.

Why one module of ~780 lines: the element scanner, the cuts and the diff share byte
offsets into the same buffer; split, each part would re-derive them.
"""

import bisect
import os
import re
from dataclasses import dataclass
from dataclasses import field as dc_field

from lxml import etree

from . import fsutil, safefs
from .errors import EngineError
from .fsutil import split_lines as _split_lines
from .fsutil import unified_diff

__all__ = [
    "REMOVED_FIELDS",
    "CronFieldError",
    "CronFieldPlan",
    "Removal",
    "files_from_findings",
    "files_from_log",
    "find_xml_files",
    "plan",
]

#: ir.cron fields of Odoo 17.0 that Odoo 18.0 no longer has.
REMOVED_FIELDS = ("numbercall", "doall")

#: Elements an Odoo data file nests its records in (odoo/tools/convert.py).
CONTAINER_TAGS = ("odoo", "openerp", "data")

#: The pattern type whose findings name the XML files to fix.
PATTERN_TYPE = "cron_field_deprecated"

_SKIP_DIRS = {"__pycache__", "node_modules"}


class CronFieldError(EngineError):
    """A file fix-cron cannot handle; the message names the file and line."""

    def __init__(self, path, message, line=None):
        self.path = path
        self.line = line
        where = "%s:%s" % (path, line) if line else str(path)
        super().__init__("%s: %s" % (where, " ".join(str(message).split())))


@dataclass
class Removal:
    """One ``<field>`` element to remove."""

    line: int  # 1-based line of the element in the old file
    field: str  # numbercall, doall
    record_id: str  # the id= of its <record>, "" when it has none

    def to_dict(self):
        return {"line": self.line, "field": self.field, "record_id": self.record_id}


@dataclass
class CronFieldPlan:
    """What fixing one file would change. Building it changes nothing."""

    path: str
    old: bytes
    new: bytes
    removals: list = dc_field(default_factory=list)
    diff: str = ""
    encoding: str = "utf-8"

    def to_dict(self):
        return {
            "path": self.path,
            "removals": [r.to_dict() for r in self.removals],
            "diff": self.diff,
        }


# --------------------------------------------------------------------------
# parsing


def _parser():
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        strip_cdata=False,
        huge_tree=True,
    )


def _parse(data, path):
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4096]:
        raise CronFieldError(path, "not an ASCII-compatible XML file (UTF-16 or binary)", 1)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        msg = re.sub(r",? line \d+, column \d+$", "", exc.msg or str(exc))
        raise CronFieldError(path, "malformed XML: %s" % msg, exc.lineno or 1) from None
    except ValueError as exc:  # e.g. lxml refusing an unknown encoding
        raise CronFieldError(path, "unreadable XML: %s" % exc, 1) from None
    encoding = root.getroottree().docinfo.encoding or "utf-8"
    probe = b"<>/=\"' \t\r\n!?-[]"
    try:
        ascii_compatible = probe.decode("ascii").encode(encoding) == probe
    except LookupError:
        ascii_compatible = False
    if not ascii_compatible:
        raise CronFieldError(
            path, "encoding %r is not supported (not ASCII-compatible)" % encoding, 1
        )
    return root, encoding


def _localname(tag):
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else None


def _is_element(node):
    return isinstance(node.tag, str)


_NAME_END = re.compile(rb"[\s/>]")


class _Span:
    __slots__ = ("name", "start", "tag_end", "end")

    def __init__(self, name, start, tag_end):
        self.name = name
        self.start = start  # offset of "<"
        self.tag_end = tag_end  # offset just after the start tag's ">"
        self.end = None  # offset just after the end tag (or "/>")


#: The rest of a start tag: quoted values (which may hold ">") and other bytes,
#: up to the first ">" outside quotes. Its branches start with distinct bytes and
#: read one byte or one quoted value each: one way to match, no backtracking blow-up.
_TAG_REST = re.compile(rb"""(?:[^>"']|"[^"]*"|'[^']*')*>""")


def _skip_quoted_until_gt(data, j, n):
    """Offset of the first ">" at or after *j* that is not inside quotes.

    >>> _skip_quoted_until_gt(b'<a x=">" y=">">', 2, 15), _skip_quoted_until_gt(b'<a x=">', 2, 7)
    (14, -1)
    """
    match = _TAG_REST.match(data, j, n)
    return match.end() - 1 if match else -1


def _scan_elements(data):
    """Byte spans of every element of *data*, in document order.

    A minimal scanner for well-formed XML in an ASCII-compatible encoding
    (lxml has already accepted the document): comments, CDATA, processing
    instructions and the DOCTYPE are skipped, quoted attribute values may
    hold ``>``.

    >>> [(s.name, s.start, s.end) for s in _scan_elements(b'<a x=">"><!-- <b> --><b/></a>')]
    [(b'a', 0, 29), (b'b', 21, 25)]
    """
    spans = []
    stack = []
    n = len(data)
    i = 0
    while True:
        lt = data.find(b"<", i)
        if lt < 0:
            break
        if data.startswith(b"<!--", lt):
            end = data.find(b"-->", lt + 4)
            if end < 0:
                raise ValueError("unterminated comment at offset %d" % lt)
            i = end + 3
        elif data.startswith(b"<![CDATA[", lt):
            end = data.find(b"]]>", lt + 9)
            if end < 0:
                raise ValueError("unterminated CDATA at offset %d" % lt)
            i = end + 3
        elif data.startswith(b"<?", lt):
            end = data.find(b"?>", lt + 2)
            if end < 0:
                raise ValueError("unterminated processing instruction at offset %d" % lt)
            i = end + 2
        elif data.startswith(b"<!", lt):  # DOCTYPE, possibly with an internal subset
            j, depth, quote = lt + 2, 0, None
            while j < n:
                c = data[j]
                if quote is not None:
                    if c == quote:
                        quote = None
                elif c in (0x22, 0x27):
                    quote = c
                elif c == 0x5B:
                    depth += 1
                elif c == 0x5D:
                    depth -= 1
                elif c == 0x3E and depth <= 0:
                    break
                j += 1
            i = j + 1
        elif data.startswith(b"</", lt):
            gt = data.find(b">", lt)
            if gt < 0 or not stack:
                raise ValueError("unexpected end tag at offset %d" % lt)
            name = data[lt + 2 : gt].strip()
            span = stack.pop()
            if span.name != name:
                raise ValueError("end tag %r does not close %r" % (name, span.name))
            span.end = gt + 1
            i = gt + 1
        else:
            m = _NAME_END.search(data, lt + 1)
            if m is None:
                raise ValueError("unterminated start tag at offset %d" % lt)
            gt = _skip_quoted_until_gt(data, m.start(), n)
            if gt < 0:
                raise ValueError("unterminated start tag at offset %d" % lt)
            span = _Span(data[lt + 1 : m.start()], lt, gt + 1)
            spans.append(span)
            if data[gt - 1] == 0x2F:  # "/>"
                span.end = gt + 1
            else:
                stack.append(span)
            i = gt + 1
    if stack:
        raise ValueError("unclosed element %r" % stack[-1].name)
    return spans


def _line_of(data, offset):
    """1-based line number of *offset*, counted the way libxml2 counts (LF)."""
    return data.count(b"\n", 0, offset) + 1


#: libxml2 keeps line numbers past this one apart (XML_PARSE_BIG_LINES) and
#: reports them one too high (libxml2 2.14: line 65536 is said to be 65537).
_LIBXML_BIG_LINE = 65535


def _big_line(reported, counted):
    """Whether libxml2's *reported* line is its way of saying *counted*."""
    return counted >= _LIBXML_BIG_LINE and reported == counted + 1


def _match_spans(root, data, path):
    """Map every lxml element to its byte span; refuse when they disagree."""
    elements = [el for el in root.iter() if _is_element(el)]
    try:
        spans = _scan_elements(data)
    except ValueError as exc:
        raise CronFieldError(path, "cannot locate elements in the raw bytes: %s" % exc) from None
    if len(elements) != len(spans):
        raise CronFieldError(
            path,
            "cannot locate elements in the raw bytes (%d parsed, %d found); "
            "entities or a DTD may define elements" % (len(elements), len(spans)),
        )
    pos, line = 0, 1  # spans come in document order: count lines incrementally
    for el, span in zip(elements, spans, strict=True):
        name = span.name.decode("ascii", "replace").rsplit(":", 1)[-1]
        line += data.count(b"\n", pos, span.tag_end - 1)
        pos = span.tag_end - 1
        if name != _localname(el.tag) or (el.sourceline and el.sourceline != line
                                           and not _big_line(el.sourceline, line)):
            raise CronFieldError(
                path,
                "cannot locate <%s> in the raw bytes (parsed at line %s, found <%s> at line %s)"
                % (_localname(el.tag), el.sourceline, name, line),
                el.sourceline,
            )
    return dict(zip(elements, spans, strict=True))


def _cron_fields_to_remove(root, path="<bytes>"):
    """The <field> elements to drop: (element, record) pairs in document order.

    Tags are matched exactly as odoo/tools/convert.py does (no namespace): a
    ``<record model="ir.cron">`` whose ancestors are all ``<odoo>``,
    ``<openerp>`` or ``<data>``, and its direct ``<field>`` children whose
    name is one of :data:`REMOVED_FIELDS`.
    """
    if root.tag not in CONTAINER_TAGS:
        return []
    found = []
    for record in root.iter("record"):
        if record.get("model") != "ir.cron":  # Odoo does not strip it either
            continue
        parent = record.getparent()
        inside_data = True
        while parent is not None:
            if parent.tag not in CONTAINER_TAGS:
                inside_data = False
                break
            parent = parent.getparent()
        if not inside_data:
            continue
        for child in record:
            if child.tag is etree.Entity:
                raise CronFieldError(
                    path,
                    "ir.cron record %r uses an entity reference (&%s;); fix it by hand"
                    % (record.get("id", ""), child.text.strip("&;")),
                    child.sourceline or record.sourceline,
                )
            if child.tag == "field" and child.get("name") in REMOVED_FIELDS:
                found.append((child, record))
    return found


# --------------------------------------------------------------------------
# byte editing

_HWS = b" \t"


_BREAK = re.compile(rb"[\r\n]")


def _line_breaks(data):
    """Offsets of every CR and LF of *data*, once (planning stays linear)."""
    return [m.start() for m in _BREAK.finditer(data)]


def _line_bounds(data, start, end, breaks=None):
    """(offset of the start of *start*'s line, offset of the EOL after *end*)."""
    if breaks is None:
        breaks = _line_breaks(data)
    before = bisect.bisect_left(breaks, start)
    line_start = breaks[before - 1] + 1 if before else 0
    after = bisect.bisect_left(breaks, end)
    eol = breaks[after] if after < len(breaks) else len(data)
    return line_start, eol


def _removal_ranges(data, spans):
    """Byte ranges to cut for *spans*: whole lines when an element stands alone.

    Neighbouring elements separated by blanks only are merged first, so two
    removed fields on one line leave no stray indentation behind.
    """
    breaks = _line_breaks(data)
    raw = sorted((s.start, s.end) for s in spans)
    merged = []
    for start, end in raw:
        if merged and not data[merged[-1][1] : start].strip(_HWS):
            merged[-1][1] = end
        else:
            merged.append([start, end])
    ranges = []
    for start, end in merged:
        line_start, eol = _line_bounds(data, start, end, breaks)
        before_blank = not data[line_start:start].strip(_HWS)
        after_blank = not data[end:eol].strip(_HWS)
        if before_blank and after_blank:
            nl_len = 2 if data[eol : eol + 2] == b"\r\n" else (1 if eol < len(data) else 0)
            ranges.append((line_start, eol + nl_len))
        elif before_blank:  # something follows on the line: eat the blanks after
            k = end
            while k < eol and data[k] in _HWS:
                k += 1
            ranges.append((start, k))
        else:  # something precedes on the line: eat the blanks before
            k = start
            while k > line_start and data[k - 1] in _HWS:
                k -= 1
            ranges.append((k, end))
    return ranges


def _cut(data, ranges):
    out, pos = [], 0
    for start, end in sorted(ranges):
        out.append(data[pos:start])
        pos = max(pos, end)
    out.append(data[pos:])
    return b"".join(out)


# --------------------------------------------------------------------------
# verification


def _norm_text(text):
    return " ".join(text.split()) if text else ""


def _tokens(root, skip=frozenset()):
    """A flat, whitespace-insensitive description of a tree, minus *skip*.

    Text is compared with runs of blanks collapsed, so cutting a whole line
    (its indentation and newline) compares equal, while any other change of
    text, attributes, comments or structure does not.
    """
    out = []

    def text(value):
        value = _norm_text(value)
        if not value:
            return
        if out and out[-1][0] == "text":
            out[-1] = ("text", out[-1][1] + " " + value)
        else:
            out.append(("text", value))

    def walk(node):
        if node in skip:
            text(node.tail)
            return
        if _is_element(node):
            out.append(("start", node.tag, tuple(sorted(node.attrib.items()))))
            text(node.text)
            for child in node:
                walk(child)
            out.append(("end", node.tag))
        else:  # comment, processing instruction, entity reference
            out.append(("node", str(node.tag), node.text, getattr(node, "target", None)))
        text(node.tail)

    walk(root)
    return out


def _siblings(root):
    prev = list(root.itersiblings(preceding=True))[::-1]
    nxt = list(root.itersiblings())
    return [(str(n.tag), n.text) for n in prev + nxt]


def _check_tree(old_root, new_root, removed, path):
    old_info = old_root.getroottree().docinfo
    new_info = new_root.getroottree().docinfo
    for attr in ("encoding", "xml_version", "standalone", "doctype"):
        if getattr(old_info, attr) != getattr(new_info, attr):
            raise CronFieldError(path, "verification failed: the XML %s changed" % attr)
    if _siblings(old_root) != _siblings(new_root):
        raise CronFieldError(path, "verification failed: comments outside the root changed")
    expected = _tokens(old_root, skip=frozenset(removed))
    actual = _tokens(new_root)
    if expected != actual:
        for i, (a, b) in enumerate(zip(expected, actual, strict=False)):  # noqa: B007
            if a != b:
                break
        else:
            i = min(len(expected), len(actual))
        raise CronFieldError(
            path,
            "verification failed: the result is not the original minus the removed "
            "fields (first difference at token %d)" % i,
        )


# --------------------------------------------------------------------------
# diff


def _cut_diff(old, new, ranges, path, encoding="utf-8", context=3):
    """:func:`unified_diff` of *old* and *new* = *old* minus the byte *ranges*.

    difflib searches the alignment, in quadratic time on a file of many
    alike records; here it is known: every line no cut touches is kept, in
    order. Changed lines between two kept ones form one change; the hunks
    are grouped and written as difflib writes them.

    >>> old = b"a\\nb\\nc\\n"
    >>> _cut_diff(old, b"a\\nc\\n", [(2, 4)], "f.xml") == unified_diff(old, b"a\\nc\\n", "f.xml")
    True
    """
    old_lines = _split_lines(old.decode(encoding, "replace"))
    new_lines = _split_lines(new.decode(encoding, "replace"))
    # Which old lines a cut touches, by the byte offsets where old lines start.
    raw_lines = re.findall(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", old)
    touched, offset = set(), 0
    cuts = sorted(ranges)
    cut = 0
    for number, raw in enumerate(raw_lines):
        end = offset + len(raw)
        while cut < len(cuts) and cuts[cut][1] <= offset:
            cut += 1
        probe = cut
        while probe < len(cuts) and cuts[probe][0] < end:
            if cuts[probe][1] > offset:
                touched.add(number)
                break
            probe += 1
        offset = end
    if len(raw_lines) != len(old_lines):  # pragma: no cover - a decoding oddity
        return unified_diff(old, new, path, encoding)
    kept = [number for number in range(len(old_lines)) if number not in touched]
    if len(new_lines) < len(kept):  # pragma: no cover - cuts merged lines oddly
        return unified_diff(old, new, path, encoding)
    # Kept old lines map in order onto new lines; what lies between is a change.
    opcodes, i, j = [], 0, 0
    new_index = _kept_positions(old_lines, new_lines, kept)
    if new_index is None:  # pragma: no cover - the mapping does not hold
        return unified_diff(old, new, path, encoding)
    for old_number, new_number in zip(kept, new_index, strict=True):
        if old_number > i or new_number > j:
            tag = ("replace" if old_number > i and new_number > j
                   else "delete" if old_number > i else "insert")
            opcodes.append((tag, i, old_number, j, new_number))
        if opcodes and opcodes[-1][0] == "equal":
            tag, i1, _i2, j1, _j2 = opcodes[-1]
            opcodes[-1] = ("equal", i1, old_number + 1, j1, new_number + 1)
        else:
            opcodes.append(("equal", old_number, old_number + 1, new_number, new_number + 1))
        i, j = old_number + 1, new_number + 1
    if i < len(old_lines) or j < len(new_lines):
        tag = ("replace" if i < len(old_lines) and j < len(new_lines)
               else "delete" if i < len(old_lines) else "insert")
        opcodes.append((tag, i, len(old_lines), j, len(new_lines)))
    label = path.lstrip("/")
    out = []
    for group in _grouped(opcodes, context):
        first, last = group[0], group[-1]
        out.append("--- a/%s\n+++ b/%s\n" % (label, label) if not out else "")
        out.append("@@ -%s +%s @@\n" % (_unified_range(first[1], last[2]),
                                         _unified_range(first[3], last[4])))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out.extend(_diff_line(" ", line) for line in old_lines[i1:i2])
                continue
            out.extend(_diff_line("-", line) for line in old_lines[i1:i2])
            out.extend(_diff_line("+", line) for line in new_lines[j1:j2])
    return "".join(out)


def _kept_positions(old_lines, new_lines, kept):
    """Where each kept old line is in *new_lines*: the same text, in order."""
    positions, j = [], 0
    for number in kept:
        line = old_lines[number]
        while j < len(new_lines) and new_lines[j] != line:
            j += 1
        if j == len(new_lines):
            return None
        positions.append(j)
        j += 1
    return positions


def _diff_line(sign, line):
    if line.endswith(("\n", "\r")):
        return sign + line
    return sign + line + "\n\\ No newline at end of file\n"


def _unified_range(start, stop):
    """difflib's range notation: ``start,length`` (1-based), or ``start`` for one."""
    beginning, length = start + 1, stop - start
    if length == 1:
        return "%d" % beginning
    if not length:
        beginning -= 1
    return "%d,%d" % (beginning, length)


def _grouped(codes, n):
    """difflib.SequenceMatcher.get_grouped_opcodes, on known opcodes."""
    if not codes:
        codes = [("equal", 0, 1, 0, 1)]
    codes = list(codes)
    if codes[0][0] == "equal":
        tag, i1, i2, j1, j2 = codes[0]
        codes[0] = tag, max(i1, i2 - n), i2, max(j1, j2 - n), j2
    if codes[-1][0] == "equal":
        tag, i1, i2, j1, j2 = codes[-1]
        codes[-1] = tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)
    nn = n + n
    group = []
    for tag, i1, i2, j1, j2 in codes:
        if tag == "equal" and i2 - i1 > nn:
            group.append((tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)))
            yield group
            group = []
            i1, j1 = max(i1, i2 - n), max(j1, j2 - n)
        group.append((tag, i1, i2, j1, j2))
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        yield group


# --------------------------------------------------------------------------
# public API


def plan_bytes(data, path="<bytes>"):
    """Plan the fix of XML *data*; see :func:`plan`."""
    if not data.strip():  # an empty data file (Odoo ships some): nothing to fix
        return None
    root, encoding = _parse(data, path)
    targets = _cron_fields_to_remove(root, path)
    if not targets:
        return None
    spans = _match_spans(root, data, path)
    removals = []
    counted, line = 0, 1  # targets come in document order: count lines incrementally
    for el, record in targets:
        start = spans[el].start
        line += data.count(b"\n", counted, start)
        counted = start
        removals.append(
            Removal(
                line=line,
                field=el.get("name"),
                record_id=record.get("id", ""),
            )
        )
    ranges = _removal_ranges(data, [spans[el] for el, _ in targets])
    new = _cut(data, ranges)
    new_root, _ = _parse(new, path)
    _check_tree(root, new_root, [el for el, _ in targets], path)
    if _cron_fields_to_remove(new_root):  # pragma: no cover - guarded by _check_tree
        raise CronFieldError(path, "verification failed: fields left after the fix")
    return CronFieldPlan(
        path=path,
        old=data,
        new=new,
        removals=removals,
        diff=_cut_diff(data, new, ranges, path, encoding),
        encoding=encoding,
    )


def plan(path):
    """Plan the fix of one XML file: a :class:`CronFieldPlan`, or None.

    None means there is nothing to do (no ir.cron record sets a removed field,
    or the file is not an Odoo data file). Raises :class:`CronFieldError` for
    a file that cannot be read or parsed, naming the file and the line.
    Nothing is written.
    """
    path = os.fspath(path)
    try:
        data, _ = safefs.read(*fsutil.split_root(path))
    except (OSError, EngineError) as exc:
        raise CronFieldError(path, "cannot read: %s" % (getattr(exc, "strerror", None) or exc)) \
            from None
    return plan_bytes(data, path)


def find_xml_files(paths, on_skip=None):
    """XML files under *paths* (files or folders, recursive), sorted, unique.

    Folders are walked without following symlinked folders; a file (or a
    symlink) under a folder that resolves outside that folder is skipped and
    reported through ``on_skip(path, reason)``. Hidden folders are skipped.
    A path that does not exist raises :class:`CronFieldError`.
    """
    seen, out = set(), []

    def add(real):
        if real not in seen:
            seen.add(real)
            out.append(real)

    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(
                    d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS
                )
                for name in sorted(filenames):
                    if not name.lower().endswith(".xml"):
                        continue
                    candidate = os.path.join(dirpath, name)
                    try:
                        real = fsutil.resolve_inside(candidate, [p])
                    except fsutil.PathEscapeError as exc:
                        if on_skip:
                            on_skip(candidate, str(exc))
                        continue
                    if os.path.isfile(real):
                        add(real)
        elif os.path.isfile(p):
            add(os.path.realpath(p))
        elif os.path.lexists(p):
            raise CronFieldError(p, "not a regular file or folder")
        else:
            raise CronFieldError(p, "no such file or folder")
    return sorted(out)


def files_from_findings(findings):
    """XML files named by ``cron_field_deprecated`` findings, existing ones only.

    Each finding's ``xml_file`` capture, in order of first appearance.
    """
    out = []
    for finding in findings:
        if getattr(finding, "pattern_type", None) != PATTERN_TYPE:
            continue
        xml_file = (getattr(finding, "captures", None) or {}).get("xml_file")
        if not xml_file or xml_file in out:
            continue
        if os.path.isfile(xml_file):
            out.append(xml_file)
    return out


def files_from_log(log_path, pattern_set):
    """Scan *log_path* once with *pattern_set*; the XML files its errors name.

    Returns ``(files, missing)``: existing files to fix, and the files the log
    names that do not exist here (to report, not to touch).
    """
    from .scanner import Scanner

    result = Scanner(pattern_set).scan_file(log_path, cursor=None, final=True)
    files = files_from_findings(result.findings)
    named = []
    for finding in result.findings:
        if getattr(finding, "pattern_type", None) == PATTERN_TYPE:
            xml_file = (finding.captures or {}).get("xml_file")
            if xml_file and xml_file not in named:
                named.append(xml_file)
    missing = [f for f in named if f not in files]
    return files, missing
