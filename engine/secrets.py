"""Mask secrets in text before it is stored, shown or sent (safety rule 8).

Log excerpts, config diffs and probe messages can carry passwords: a DSN in a
psycopg2 error, ``db_password`` in odoo.conf, an API key in a URL, a cookie,
a private key. Everything that leaves the engine as text goes through
:func:`mask_secrets` (text) or :func:`mask_values` (JSON-able values), and the
watchdog's log lines through :class:`MaskingFormatter`. One masker, so every
sink (incidents, chatter, audit, spool, state, notifications, the watchdog
log, ``--json``) masks the same forms:

>>> mask_secrets("postgresql://odoo:s3cret@db:5432/prod")
'postgresql://odoo:***@db:5432/prod'
>>> mask_secrets("db_password = hunter2")
'db_password = ***'
>>> mask_secrets("connection to server failed: password=abc host=db user=odoo")
'connection to server failed: password=*** host=db user=odoo'
>>> mask_secrets("odoo-bin --db_password=hunter2 -d prod")
'odoo-bin --db_password=*** -d prod'
>>> mask_secrets("GET /web?access_token=0123456789abcdef&x=1")
'GET /web?access_token=***&x=1'
>>> mask_secrets("Authorization: Bearer eyJhbGciOi.J9.abc")
'Authorization: Bearer ***'
>>> mask_secrets("{'login': 'admin', 'password': 'admin123'}")
"{'login': 'admin', 'password': '***'}"
>>> mask_secrets("nothing secret here, password authentication failed for user")
'nothing secret here, password authentication failed for user'

Cookies, environment variables, compound key names, quoted values:

>>> mask_secrets("Cookie: frontend_lang=en_US; session_id=4f3a9c; tz=UTC")
'Cookie: frontend_lang=en_US; session_id=***; tz=UTC'
>>> mask_secrets("env: PGPASSWORD=hunter2 PGUSER=odoo")
'env: PGPASSWORD=*** PGUSER=odoo'
>>> mask_secrets("dsn: host=db password='my \\\\'quoted\\\\' pass' user=odoo")
"dsn: host=db password='***' user=odoo"
>>> mask_secrets('{"oauth_access_token": "ya29.a0A", "AWS_SECRET_ACCESS_KEY": "wJalr"}')
'{"oauth_access_token": "***", "AWS_SECRET_ACCESS_KEY": "***"}'
>>> mask_secrets("sent X-Api-Key: 9f8e7d with client_secret=abc")
'sent X-Api-Key: *** with client_secret=***'

odoo.conf values run to the end of their line, spaces included, also when a
config parser quotes the line in its error:

>>> mask_secrets("[options]\\nadmin_passwd = my secret pass\\ndb_host = db")
'[options]\\nadmin_passwd = ***\\ndb_host = db'
>>> mask_secrets("[line  3]: 'admin_passwd = my secret pass\\\\n'")
"[line  3]: 'admin_passwd = ***'"

A value cut where a sample or a line was cut, and private keys, whole or cut:

>>> mask_secrets("password='my secret pa")
"password='***"
>>> mask_secrets("connect postgresql://odoo:hunter")
'connect postgresql://odoo:***'
>>> mask_secrets("-----BEGIN RSA PRIVATE KEY-----\\nMIIEow\\n-----END RSA PRIVATE KEY-----")
'-----BEGIN RSA PRIVATE KEY-----\\n***\\n-----END RSA PRIVATE KEY-----'
>>> mask_secrets("key: -----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC")
'key: -----BEGIN PRIVATE KEY-----\\n***'
>>> mask_secrets("[...]\\nAASCBKcwggSjAgEAAoIBAQC7\\n-----END PRIVATE KEY-----")
'[...]\\n***\\n-----END PRIVATE KEY-----'

Every rule is linear in the length of the text (no nested quantifiers, each
match starts only where a key, scheme or marker starts), because the text is
whatever someone wrote into a log.
"""

import logging
import re

MASK = "***"

# -- private keys (PEM) ------------------------------------------------------------------

_PEM_LABEL = r"-----(?:BEGIN|END) [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
_PEM_BLOCK = re.compile(
    r"(?P<begin>-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)(?P<body>.*?)"
    r"(?P<end>-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\Z)", re.S)
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
#: What a key body is made of: base64, PEM headers, line breaks (also ``\n`` escaped).
_PEM_BODY_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\\\r\n\t ")


def _mask_pem(text):
    def block(match):
        end = match.group("end")
        return match.group("begin") + ("\n" + MASK + "\n" + end if end else "\n" + MASK)

    text = _PEM_BLOCK.sub(block, text)
    # An END whose BEGIN was cut away (the head of a record or a sample dropped):
    # the base64 lines before it are the key.
    pieces, last = [], 0
    for match in _PEM_END.finditer(text):
        start = match.start()
        while start > last and text[start - 1] in _PEM_BODY_CHARS:
            start -= 1
        body = text[start:match.start()]
        if sum(char.isalnum() for char in body) >= 16:
            pieces += [text[last:start], ("\n" if body.startswith("\n") else "") + MASK + "\n"]
            last = match.start()
    if pieces:
        text = "".join(pieces) + text[last:]
    return text


# -- user:password@ in URLs --------------------------------------------------------------

# The scheme starts where no scheme character precedes it, so a long run of
# letters and dots is tried once, not once per position.
_URL_PRE = r"(?P<pre>(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,30}://[^\s:/@'\"]{1,256}:)"
_URL_PASSWORD = re.compile(_URL_PRE + r"(?P<secret>(?!\*\*\*)[^\s/'\"]+)(?=@)", re.I)
#: The same URL cut before its ``@`` (the end of a cut text); a port is digits only.
_URL_PASSWORD_CUT = re.compile(_URL_PRE + r"(?P<secret>[^\s/'\"@]*[^\s/'\"@0-9*][^\s/'\"@]*)\Z",
                               re.I)

# -- key = value ---------------------------------------------------------------------------

_KEY = re.compile(
    r"(?:(?<![\w.\-\\'\"])|(?<=\\[nrt]))(?P<oq>\\?['\"])?(?P<key>[\w.\-]{1,128})(?P<cq>\\?['\"])?"
    r"(?P<sep>(?P<space>[ \t]*)(?:=|:(?!//))[ \t]*)")
#: A key is secret when its name holds one of these (``PGPASSWORD``, ``x-api-key``,
#: ``oauth_access_token``, ``AWS_SECRET_ACCESS_KEY``, ``session_id``...).
_SECRET_WORDS = re.compile(
    r"passw(?:or)?d|passphrase|pwd|secret|token|api[_-]?key|private[_-]?key|access[_-]?key|"
    r"auth[_-]?key|session[_-]?id|credential", re.I)
#: ... or ends with a ``key`` part (``signing_key``) or has a ``pass`` part (``db.pass``).
_SECRET_PARTS = frozenset(("pass", "pw"))
#: Names of things about a secret that are no secret (``api_key_file``).
_NOT_SECRET_LAST = frozenset((
    "file", "path", "dir", "url", "uri", "name", "names", "type", "len", "length", "count",
    "expiry", "expires", "timeout", "header", "field", "fields", "param", "params"))
_PART_SPLIT = re.compile(r"[_.\-]+")
#: An unquoted value: up to a space, a separator or a closing bracket; ``\\n`` and
#: friends end it too (JSON text).
_BARE_VALUE = re.compile(r"(?:[^\s&,;'\"}\])<>\\]|\\(?![nrt\"'\\]))+")
#: A quoted value: escapes skipped; a quote followed by a letter is inside the value
#: too (libpq's ``\\'`` inside JSON text has its backslash doubled).
#: No quoted secret is longer; the bound keeps a text of unclosed quotes linear.
MAX_QUOTED = 1024
_QUOTED = {
    "'": re.compile(r"(?:[^'\\\n]|\\.|'(?=\w))*"),
    '"': re.compile(r'(?:[^"\\\n]|\\.|"(?=\w))*'),
}


def is_secret_key(name):
    """Whether a value named *name* is a secret.

    >>> [is_secret_key(n) for n in ("PGPASSWORD", "x-api-key", "session_id", "signing_key")]
    [True, True, True, True]
    >>> [is_secret_key(n) for n in ("api_key_file", "user", "key", "host", "token_url")]
    [False, False, False, False, False]
    """
    parts = [part for part in _PART_SPLIT.split(str(name).lower()) if part]
    if not parts or parts[-1] in _NOT_SECRET_LAST:
        return False
    if _SECRET_WORDS.search(name):
        return True
    return bool(_SECRET_PARTS.intersection(parts)) or (len(parts) > 1 and parts[-1] == "key")


#: Where a line ends: a newline, a newline escaped in JSON text, or the end of a JSON
#: string (masking never swallows a closing quote: masked JSON text stays JSON).
_LINE_END = re.compile(r'\n|\\[nr]|(?<!\\)"')


def _line_end(text, start):
    match = _LINE_END.search(text, start)
    return match.start() if match else len(text)


def _starts_a_later_line(text, pos):
    """Whether *pos* starts a line (blanks or a diff/comment mark before it) that is
    not the text's first: a one-line message keeps the words after ``key=value``.

    Looks back over the blanks only, so a long text is not read again per key."""
    i = pos
    while i > 0 and text[i - 1] in " \t":
        i -= 1
    if i > 0 and text[i - 1] in "+#;":
        i -= 1
        while i > 0 and text[i - 1] in " \t":
            i -= 1
    if i == 0:
        return False
    return text[i - 1] == "\n" or (i >= 2 and text[i - 2] == "\\" and text[i - 1] in "nr")


def _quoted_end(text, start, quote):
    """End of the quoted value whose opening *quote* ends at *start*; and its closing."""
    if quote in _QUOTED:
        end = _QUOTED[quote].match(text, start, start + MAX_QUOTED).end()
        if text[end:end + 1] == quote:
            return end, True
        return min(end, _line_end(text, start)), False
    # an escaped quote (``\\"`` in JSON text): up to the next one on the line
    line_end = _line_end(text, start)
    end = text.find(quote, start, line_end)
    return (end, True) if end >= 0 else (line_end, False)


def _mask_keys(text):
    pieces, last, pos = [], 0, 0
    while True:
        match = _KEY.search(text, pos)
        if match is None:
            break
        pos = match.end()
        key = match.group("key")
        if not is_secret_key(key) or (key.count(".") >= 2 and text[pos - 1:pos] != "="
                                      and ":" in match.group("sep")):
            # not a secret, or a logger (``odoo.addons.x_token.models: message``)
            continue
        start = match.end()
        opener = re.match(r"\\?['\"]", text[start:start + 2])
        enclosing = match.group("oq") if not match.group("cq") else None
        if opener:  # password='...', "token": "..."
            quote = opener.group()
            inner = start + len(quote)
            end, _closed = _quoted_end(text, inner, quote)
            begin = inner
        elif enclosing:  # 'admin_passwd = my secret pass\n': up to the closing quote
            begin = start
            end, _closed = _quoted_end(text, start, enclosing)
        elif match.group("space") or _starts_a_later_line(text, match.start()):
            # config syntax (``key = value``, or a key that starts a line of a dump):
            # the whole line, for odoo.conf values may hold spaces
            begin, end = start, _line_end(text, start)
            while end > begin and text[end - 1] in " \t\r":
                end -= 1
        else:
            value = _BARE_VALUE.match(text, start)
            begin, end = start, value.end() if value else start
        if end <= begin or text.startswith(MASK, begin):
            continue
        pieces += [text[last:begin], MASK]
        last = pos = end
    if not pieces:
        return text
    return "".join(pieces) + text[last:]


# -- HTTP authorization headers ------------------------------------------------------------

_AUTH_HEADER = re.compile(r"(?P<pre>\b(?:Bearer|Basic|Token)\s+)(?P<secret>[A-Za-z0-9._~+/=-]{6,})")

# Every rule needs one of these words; most text has none and skips the rules.
# Plain substring tests on the lower-cased text beat one case-blind regex.
_SUSPECT_WORDS = ("pass", "pwd", "pw", "secret", "token", "key", "://", "bearer", "basic",
                  "session", "credential")


def _suspect(text):
    lowered = text.lower()
    return any(word in lowered for word in _SUSPECT_WORDS)


def mask_secrets(text):
    """Return *text* with every recognised secret value replaced by ``***``.

    Masking is idempotent: masking twice gives the same text.

    >>> t = mask_secrets("smtp_password: x1 and postgres://u:p@h/db")
    >>> t == mask_secrets(t)
    True
    """
    if not text or not isinstance(text, str) or not _suspect(text):
        return text
    if "PRIVATE KEY" in text:
        text = _mask_pem(text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: m.group("pre") + MASK, text)
        text = _URL_PASSWORD_CUT.sub(lambda m: m.group("pre") + MASK, text)
    text = _mask_keys(text)
    return _AUTH_HEADER.sub(lambda m: m.group("pre") + MASK, text)


def mask_and_cut(text, limit):
    """*text* masked, then cut to *limit* characters: a cut never splits a secret open.

    >>> mask_and_cut("connect postgresql://odoo:hunter2@db/prod failed", 30)
    'connect postgresql://odoo:***@'
    """
    return mask_secrets(mask_secrets(text)[:limit]) if text else text


def mask_values(value, _name=None):
    """Mask the secrets in every string of a JSON-able value; keys stay as they are.

    A value whose key names a secret is masked whole.

    >>> mask_values({"dsn": "postgresql://u:pw@db/x", "tries": [1, "token=abc"], "ok": True})
    {'dsn': 'postgresql://u:***@db/x', 'tries': [1, 'token=***'], 'ok': True}
    >>> mask_values({"db_password": "my secret", "PGPASSWORD": 1234, "api_key_file": "/k"})
    {'db_password': '***', 'PGPASSWORD': '***', 'api_key_file': '/k'}
    """
    secret = _name is not None and is_secret_key(_name)
    if isinstance(value, str):
        return MASK if secret and value else mask_secrets(value)
    if isinstance(value, dict):
        return {key: mask_values(item, key if isinstance(key, str) else None)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_values(item, _name) for item in value]
    if secret and isinstance(value, (int, float)) and not isinstance(value, bool):
        return MASK
    return value


class MaskingFormatter(logging.Formatter):
    """A log formatter whose lines (tracebacks included) are masked.

    >>> record = logging.makeLogRecord({"msg": "dsn %s", "args": ("password='a b'",)})
    >>> MaskingFormatter("%(message)s").format(record)
    "dsn password='***'"
    """

    def format(self, record):
        return mask_secrets(super().format(record))
