"""Mask secrets in text before it is stored, shown or sent (safety rule 8).

Log excerpts, config diffs and probe messages can carry passwords: a DSN in a
psycopg2 error, ``db_password`` in odoo.conf, an API key in a URL. Everything
that leaves the engine as text goes through :func:`mask_secrets`.

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
"""

import re

MASK = "***"

# Names whose value is a secret. Matched case-insensitively as a whole key.
_SECRET_KEYS = (
    r"(?:db_|smtp_|admin_|ldap_|proxy_)?passw(?:or)?d|passwd|pwd|secret|"
    r"(?:api|access|auth|refresh|session|csrf)[_-]?(?:key|token)|token|apikey|"
    r"client_secret|private_key|admin_passwd"
)

_RULES = (
    # scheme://user:password@host
    (re.compile(r"(?P<pre>\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]+:)(?P<secret>[^\s@'\"]+)(?=@)", re.I),
     None),
    # key = value / key: value / key=value in config, libpq DSNs and query strings
    (re.compile(
        r"(?P<pre>(?<!\w)(?:" + _SECRET_KEYS + r")\s*(?:=|:(?!//))\s*)"
        r"(?P<secret>(?!\*\*\*)[^\s&,;'\"}\]]+)", re.I),
     None),
    # 'password': 'value' in a repr()'d dict or JSON
    (re.compile(
        r"(?P<pre>['\"](?:" + _SECRET_KEYS + r")['\"]\s*:\s*['\"])(?P<secret>[^'\"]*)", re.I),
     None),
    # HTTP authorization headers
    (re.compile(r"(?P<pre>\b(?:Bearer|Basic|Token)\s+)(?P<secret>[A-Za-z0-9._~+/=-]{6,})"),
     None),
)


# Every rule needs one of these words; most text has none and skips the rules.
# Plain substring tests on the lower-cased text beat one case-blind regex.
_SUSPECT_WORDS = ("pass", "pwd", "secret", "token", "key", "://", "bearer", "basic")


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
    if not text or not _suspect(text):
        return text
    for regex, _ in _RULES:
        text = regex.sub(lambda m: m.group("pre") + MASK, text)
    return text


def mask_values(value):
    """Mask the secrets in every string of a JSON-able value; keys stay as they are.

    >>> mask_values({"dsn": "postgresql://u:pw@db/x", "tries": [1, "token=abc"], "ok": True})
    {'dsn': 'postgresql://u:***@db/x', 'tries': [1, 'token=***'], 'ok': True}
    """
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {key: mask_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_values(item) for item in value]
    return value
