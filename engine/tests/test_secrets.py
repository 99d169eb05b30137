"""The masker (engine/secrets.py): every form of secret, cut or whole, and what it leaves alone.

The forms are tools/secret_forms.py's, the same ones the sink tests push
through the watchdog (host/tests/test_secret_sinks.py) and the addon
(tests/test_secret_sinks.py).
"""

import json
import logging

import pytest

from engine.incidents import SAMPLE_MAX_CHARS, make_sample
from engine.secrets import (
    MASK,
    MaskingFormatter,
    is_secret_key,
    mask_and_cut,
    mask_secrets,
    mask_values,
)
from tools.secret_forms import FORM_NAMES, FORMS, leaks


@pytest.mark.parametrize("name", FORM_NAMES)
def test_each_form_is_masked_in_text_and_samples(name):
    form = FORMS[name]
    record = form.record()
    for shown in (mask_secrets(record), make_sample(record)):
        assert leaks(shown, form) == [], shown
        assert form.marker in shown  # masked, not dropped
    assert mask_secrets(mask_secrets(record)) == mask_secrets(record)  # idempotent


@pytest.mark.parametrize("name", FORM_NAMES)
def test_each_form_is_masked_wherever_a_line_is_cut(name):
    form = FORMS[name]
    first_line = form.record().split("\n")[0]
    for limit in range(1, len(first_line) + 1, 7):
        assert leaks(mask_and_cut(first_line, limit), form) == [], limit


@pytest.mark.parametrize("name", FORM_NAMES)
def test_each_form_is_masked_inside_json_and_values(name):
    form = FORMS[name]
    record = form.record()
    as_json = json.dumps({"sample": record, "nested": [{"message": record}]})
    assert leaks(mask_secrets(as_json), form) == []  # JSON text, quotes escaped
    assert leaks(json.dumps(mask_values(json.loads(as_json))), form) == []


def test_a_sample_is_masked_before_it_is_cut():
    # a DSN straddling the point where the sample keeps its head: cut first, the
    # "@" would be gone and the half password would stay
    head = SAMPLE_MAX_CHARS // 2
    text = "x" * (head - 20) + " postgresql://odoo:HalfCutSecret99@db/prod " + "y" * head
    assert text.index("HalfCutSecret99") < head < text.index("@db")
    sample = make_sample(text)
    assert "[...]" in sample
    assert "HalfCut" not in sample


def test_a_key_whose_begin_line_was_cut_away():
    body = "\n".join(f"AAAAB3NzaC1yc2EAAAADAQABAAABAQC{n:03d}" for n in range(5))
    shown = mask_secrets("[... 99 bytes omitted ...]\n" + body + "\n-----END PRIVATE KEY-----")
    assert "AAAAB3" not in shown
    assert shown.endswith(MASK + "\n-----END PRIVATE KEY-----")
    assert mask_secrets(shown) == shown


@pytest.mark.parametrize("text", [
    "FATAL:  password authentication failed for user \"odoo\"",
    "2026-11-29 14:40:19,045 42 ERROR prod odoo.addons.auth_token.models.x: boom",
    "cannot reach http://127.0.0.1:8069",
    "GET http://erp.example.com:8069/web/login?redirect=/odoo 200",
    "api_key_file = /etc/auto-heal/api-key",
    "the API key file /etc/auto-heal/key: mode 0644, must be 0600",
    "KeyError: 'password'",
    "psycopg2.OperationalError: connection to server at \"db\" (10.0.0.5), port 5432 failed",
    "pg_blocked_sessions: 3",
    "",
])
def test_text_without_secrets_is_left_alone(text):
    assert mask_secrets(text) == text


def test_secret_key_names():
    for name in ("password", "db_password", "PGPASSWORD", "admin_passwd", "pwd", "x-api-key",
                 "X-Api-Key", "oauth_access_token", "AWS_SECRET_ACCESS_KEY", "client_secret",
                 "session_id", "csrf_token", "signing_key", "db.pass", "passphrase",
                 "smtp_credentials"):
        assert is_secret_key(name), name
    for name in ("user", "host", "login", "key", "api_key_file", "token_url", "password_path",
                 "fingerprint", "signature", "sessions", "keyboard"):
        assert not is_secret_key(name), name


def test_values_named_as_secrets_are_masked_whole():
    masked = mask_values({"params": {"db_password": "two words", "retries": 3,
                                     "tokens": ["t1", "t2"], "pin_pwd": 1234,
                                     "enabled": True, "api_key_file": "/etc/k"}})
    assert masked == {"params": {"db_password": MASK, "retries": 3, "tokens": [MASK, MASK],
                                 "pin_pwd": MASK, "enabled": True, "api_key_file": "/etc/k"}}


def test_the_log_formatter_masks_messages_and_tracebacks():
    formatter = MaskingFormatter("%(levelname)s %(message)s")
    try:
        raise RuntimeError("connect: password='trace secret'")
    except RuntimeError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1,
                                   "probe %s", ("PGPASSWORD=Pg1 x",), exc_info=True)
        import sys

        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert "Pg1" not in line and "trace secret" not in line
    assert "RuntimeError" in line


@pytest.mark.parametrize("text", [
    "a." * 100_000,                                   # scheme-like runs
    "x://" + "a:" * 100_000,                         # URL user parts
    "password" + "=" * 200_000,                      # separators
    "k" * 200_000 + "=v",                            # a key longer than any key
    "-----BEGIN PRIVATE KEY-----" * 10_000,          # keys never closed
    ("A" * 60 + "\n") * 5_000 + "-----END PRIVATE KEY-----" * 1_000,
    "token='" + "\\'" * 100_000,                     # escapes in a quoted value
    "session_id=" * 50_000,
    "password=x " * 100_000,                         # many secrets on one long line
    "\n   admin_passwd=x" * 60_000,                  # many config lines
    "password='a\" token='b\" " * 40_000,             # quotes never closed
    "\\npassword = x" * 80_000,                      # JSON text, escaped newlines
])
def test_adversarial_text_is_masked_in_one_pass(text):
    # Quadratic rules would take hours on these; linear ones take milliseconds.
    # (No clock asserted: a regression makes this test hang, and the run fail.)
    masked = mask_secrets(text)
    assert mask_secrets(masked) == masked
