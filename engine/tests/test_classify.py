"""The rules of engine.classify, through the scanner (the code path of
``bin/auto-heal detect``), on real excerpts of tests/corpus and real Odoo 18
records. Each test fails when its rule is taken out."""

from datetime import datetime

import pytest

from engine import classify
from engine.incidents import Finding, aggregate
from engine.patterns import load_patterns
from engine.scanner import DEFAULT_PATTERNS, Scanner

SCANNER = Scanner(load_patterns(DEFAULT_PATTERNS))


def types(data):
    return [f.pattern_type for f in SCANNER.scan_bytes(data)]


# -- auto_heal's own records -------------------------------------------------

DEADLOCK = (b"2026-11-29 16:20:01,101 9401 ERROR prod odoo.sql_db: bad query: UPDATE x SET a=1\n"
            b"ERROR: deadlock detected\n")


def test_a_real_failure_is_still_a_finding():
    assert types(DEADLOCK) == ["db_deadlock"]


@pytest.mark.parametrize("data", [
    # the addon's fix run logs the error it met
    b"2026-11-29 16:20:02,000 9401 ERROR prod odoo.addons.auto_heal.models.auto_heal_fix_run: "
    b"fix run 4 failed: ERROR: deadlock detected\n",
    # the watchdog's own log (no database field)
    b"2026-11-29 16:20:02,000 812 WARNING auto_heal.watchdog: restart of odoo failed: "
    b"OSError: [Errno 98] Address already in use\n",
    # bin/auto-heal on stderr, in the journal
    b"Nov 29 16:20:02 web1 auto-heal[812]: auto-heal: error: [Errno 13] Permission denied: "
    b"'/var/lib/odoo/filestore'\n",
    # a UserError of auto_heal about an incident, logged by odoo.http
    b"2026-11-29 16:20:03,000 9401 WARNING prod odoo.http: Incident db_deadlock: deadlock "
    b"detected is resolved; this action does not apply to it.\n",
    # ... and about a fix run
    b"2026-11-29 16:20:03,000 9401 WARNING prod odoo.http: Fix run restart_service: "
    b"db_connection_failed: odoo.sql_db: Connection to the database failed is done; this "
    b"action does not apply to it.\n",
], ids=["addon-logger", "watchdog-log", "journal", "incident-quote", "fix-run-quote"])
def test_auto_heal_records_and_quotes_of_them_make_no_finding(data):
    assert types(data) == []
    assert types(data + DEADLOCK) == ["db_deadlock"]


@pytest.mark.parametrize("data, kind", [
    (b"2026-11-29 16:20:03,000 9401 INFO prod odoo.addons.base.models.res_users: "
     b"Login failed for db:prod login:Fix run from 203.0.113.9\n", "login_failed"),
    (b"2026-11-29 16:20:03,000 9401 ERROR prod odoo.sql_db: bad query: UPDATE res_partner "
     b"SET name='Incident db_deadlock: x' WHERE id=7\nERROR: deadlock detected\n", "db_deadlock"),
], ids=["chosen-login", "chosen-record-name"])
def test_text_anyone_can_choose_does_not_hide_a_failure(data, kind):
    assert types(data) == [kind]


# -- the cause in the frames -------------------------------------------------

# https://github.com/guohuadeng/app-odoo/issues/46 (tests/corpus, paths shortened): the message
# is Chinese
TRANSLATED_XPATH = """\
Odoo Server Error

Traceback (most recent call last):
  File "/opt/odoo13/odoo/addons/base/models/ir_ui_view.py", line 671, in apply_inheritance_specs
    pre_locate=pre_locate)
  File "/opt/odoo13/odoo/tools/template_inheritance.py", line 230, in apply_inheritance_specs
    _("Element '%s' cannot be located in parent view") % tag
ValueError: 父视图中没有找到元素 '<div id="appstore">'
""".encode()

# https://github.com/odoo/odoo/issues/153388 (tests/corpus, paths shortened): the last line is cut
CUT_XPATH = b"""\
2024-02-09 07:56:12,506 10169 ERROR db_1326679 odoo.upgrade.util: Error in view 448
Traceback (most recent call last):
  File "/home/odoo/src/odoo/addons/base/models/ir_ui_view.py", line 890, in _combine
    combined_arch = view.apply_inheritance_specs(combined_arch, arch)
  File "/home/odoo/src/odoo/addons/base/models/ir_ui_view.py", line 827, in apply_inheritance_specs
    self._raise_view_error(str(e), specs_tree)
"""

# a generic wrapper whose traceback shows only the frame of the cause
WRAPPED_XPATH = b"""\
2024-02-09 07:56:12,506 10169 CRITICAL db odoo.service.server: Failed to initialize database `db`.
Traceback (most recent call last):
  File "/opt/odoo/odoo/tools/convert.py", line 556, in _tag_root
    f(rec)
  File "/opt/odoo/odoo/tools/convert.py", line 456, in _tag_record
    record = model._load_records([data], self.mode == 'update')
  File "/opt/odoo/odoo/addons/base/models/ir_ui_view.py", line 827, in apply_inheritance_specs
    self._raise_view_error(str(e), specs_tree)
"""

# https://github.com/OCA/project/issues/1415 (tests/corpus): a cron's KeyError
CRON_KEYERROR = b"""\
Traceback (most recent call last):
  File "/opt/odoo/odoo/addons/base/models/ir_cron.py", line 391, in _callback
    self.env['ir.actions.server'].browse(server_action_id).run()
  File "/opt/odoo/odoo/modules/registry.py", line 186, in __getitem__
    return self.models[model_name]
KeyError: 'project.sprint'
"""

# https://github.com/ffaemy/my_odoo_modules/issues/2 (tests/corpus): a Windows path, cut
# in Cursor.__init__ before the borrow frame
CUT_BORROW = b"""\
Exception in thread odoo.service.cron.cron0:
Traceback (most recent call last):
  File "C:\\Odoo18\\server\\odoo\\service\\server.py", line 522, in cron_thread
    with contextlib.closing(conn.cursor()) as cr:
  File "C:\\Odoo18\\server\\odoo\\sql_db.py", line 288, in __init__
    self._cnx = pool.borrow(dsn)
                ^^^^^^^^^^^^^^^^
"""


@pytest.mark.parametrize("data, expected", [
    (TRANSLATED_XPATH, "view_inheritance_broken"),
    (CUT_XPATH, "view_inheritance_broken"),
    (WRAPPED_XPATH, "view_inheritance_broken"),
    (CRON_KEYERROR, "cron_job_failed"),
    (CUT_BORROW, "db_connection_failed"),
], ids=["translated", "cut", "wrapped", "generic-frame", "cut-before-borrow"])
def test_a_frame_gives_the_cause_when_no_specific_pattern_matched(data, expected):
    assert types(data) == [expected]


# https://github.com/OCA/queue/issues/770 (tests/corpus): 18.0, pasted without the
# Traceback line and with its frame line cut: the code line under _run_job is left
HEADLESS_CRON = b"""\
_run_job
    cron._callback(job['cron_name'], job['ir_actions_server_id'])
TypeError: IrCron._callback() missing 1 required positional argument: 'job_id'
"""


def test_frames_give_the_cause_without_the_traceback_line():
    assert types(HEADLESS_CRON) == ["cron_job_failed"]
    assert types(CUT_XPATH.split(b"\n", 1)[1]) == ["view_inheritance_broken"]


@pytest.mark.parametrize("data", [
    # a bare exception line (tests/corpus/unknown.txt)
    b"ValueError:Wrong value for ir.ui.view.type: 'template'\n",
    # a dialog pasted on one line (tests/corpus/unknown.txt, 19.0)
    b"Occured on x:8069 on model ir.module.module on 2026-01-16 17:58:46 GMT Traceback "
    b"(most recent call last): File \"/usr/lib/python3/dist-packages/odoo/http.py\", line 2275\n",
    # syslog escapes the newlines of the traceback as #012 (tests/corpus/unknown.txt, 10.0)
    b"Jun 19 17:29:18 odoo journal: Odoo Server 10.0:db1:ERROR:odoo.service.server:Worker "
    b"(20434) Exception occured, exiting...#012Traceback (most recent call last):#012  File x\n",
    # the XML context of a ParseError, as the dialog shows it (tests/corpus/unknown.txt)
    b"Error while importing module 'om_recurring_payments'.\n\n while parsing "
    b"/tmp/x/data/recurring_cron.xml:5, somewhere inside\n<record id=\"a\" model=\"ir.cron\">\n",
], ids=["bare-exception", "one-line-dialog", "syslog-012", "parse-error-context"])
def test_raw_error_text_no_pattern_claims_is_unknown(data):
    assert types(data) == ["unknown"]


@pytest.mark.parametrize("data", [
    b"odoo.modules.loading: The models ['x.y'] have no access rules in module x\n",
    b"AccessDenied: Access Denied\n",  # no ...Error/...Exception class
    b"the ParseError while parsing of a file is a known topic\n",
], ids=["warning-text", "not-an-error-class", "words-only"])
def test_raw_text_that_is_no_error_stays_quiet(data):
    assert types(data) == []


def test_a_near_parse_error_on_a_cron_is_no_numbercall_failure():
    """<= 15.0 wrote ', near'; numbercall was still a field there (11.0's cause: `function`)."""
    data = (b"\" while parsing /opt/x/data/backup_data.xml:4, near\n"
            b"<record id=\"backup_scheduler\" model=\"ir.cron\">\n"
            b"      <field name=\"function\">schedule_backup</field>\n"
            b"      <field name=\"numbercall\">-1</field>\n    </record>\n")
    assert types(data) == ["unknown"]
    assert types(data.replace(b", near", b", somewhere inside")) == ["cron_field_deprecated"]


def test_a_specific_pattern_beats_a_frame():
    # the deadlock is named by the record; the cron frame must not turn it into a cron failure
    data = (b"2026-11-29 16:20:01,101 9401 ERROR prod odoo.addons.base.models.ir_cron: "
            b"Job 'x' (4) server action #9 failed\nTraceback (most recent call last):\n"
            b'  File "/opt/odoo/odoo/addons/base/models/ir_cron.py", line 391, in _callback\n'
            b"psycopg2.errors.DeadlockDetected: deadlock detected\n")
    assert types(data) == ["db_deadlock"]


def test_a_frame_of_an_inactive_type_is_skipped():
    patterns = load_patterns(DEFAULT_PATTERNS).patterns
    scanner = Scanner([p for p in patterns if p.type != "view_inheritance_broken"])
    assert [f.pattern_type for f in scanner.scan_bytes(TRANSLATED_XPATH)] == ["unknown"]


# -- one failure, one category -----------------------------------------------

# https://github.com/itpp-labs/sync-addons/issues/460 (tests/corpus): the cause is a headerless
# traceback *before* the generic record
CAUSE_BEFORE_WRAPPER = (
    b"Traceback (most recent call last):\n"
    b'  File "/home/odoo/src/odoo/odoo/addons/base/models/ir_module.py", line 381, in '
    b"check_external_dependencies\n"
    b"    raise UserError(msg % (module_name, e.args[0]))\n"
    b'odoo.exceptions.UserError: Unable to install module "openapi" because an external '
    b"dependency is not met: Python library not installed: bravado_core\n"
    b"2023-06-20 09:17:31,791 4 CRITICAL db1 odoo.service.server: Failed to initialize "
    b"database `db1`.\nTraceback (most recent call last):\n"
    b'  File "/home/odoo/src/odoo/odoo/addons/base/models/ir_module.py", line 339, in '
    b"_check_python_external_depend\n")


def test_a_cause_before_its_wrapper_absorbs_it():
    assert types(CAUSE_BEFORE_WRAPPER) == ["python_dependency_missing"]


def test_the_request_that_died_of_a_failure_is_no_second_category():
    # https://github.com/odoo/odoo/issues/6814 (tests/corpus): stderr, then Odoo's record
    data = (b'OperationalError: could not connect to server: Connection refused\n'
            b'        Is the server running on host "localhost" (::1) and accepting\n'
            b'        TCP/IP connections on port 5432?\n\n'
            b"2015-05-22 09:35:46,491 23109 ERROR ? openerp.sql_db: Connection to the database "
            b"failed\nTraceback (most recent call last):\n"
            b'  File "/opt/odoo/openerp/sql_db.py", line 526, in borrow\n'
            b"    result = psycopg2.connect(dsn=dsn, connection_factory=PsycoConnection)\n")
    assert set(types(data)) == {"db_connection_failed"}


def finding(kind, second, line, pid=7, generic=False, exception=""):
    """A finding; *second* None means raw text (no header: no timestamp, no level)."""
    return Finding(pattern_type=kind, severity="high", fingerprint=f"{kind}{line}", signature="",
                   message="", path="odoo.log", line=line, pid=pid, generic=generic,
                   exception=exception, level=None if second is None else "ERROR",
                   timestamp=None if second is None else datetime(2026, 11, 29, 10, 0, second))


@pytest.mark.parametrize("findings, kept", [
    # specific after generic (the classic wrapper)
    ([("registry_load_failed", 1, 1, 7, True), ("cron_field_deprecated", 2, 9, 7, False)],
     ["cron_field_deprecated"]),
    # specific before generic
    ([("cron_field_deprecated", 1, 1, 7, False), ("registry_load_failed", 2, 9, 7, True)],
     ["cron_field_deprecated"]),
    # a generic finding beats an unknown one that died of the same exception, in either order
    ([("unknown", 1, 1, 7, False, "KeyError"), ("registry_load_failed", 2, 9, 7, True, "KeyError")],
     ["registry_load_failed"]),
    ([("registry_load_failed", 1, 1, 7, True, "KeyError"), ("unknown", 2, 9, 7, False, "KeyError")],
     ["registry_load_failed"]),
    # an unknown error of another exception is another failure, even a second later
    ([("db_deadlock", 1, 1, 7, False), ("unknown", 2, 9, 7, False, "RuntimeError")],
     ["db_deadlock", "unknown"]),
    ([("unknown", 1, 1, 7, False, "RuntimeError"), ("db_deadlock", 2, 9, 7, False)],
     ["db_deadlock", "unknown"]),
    # raw text next to a record is the stderr side of its failure
    ([("db_connection_failed", 1, 1, 7, False), ("unknown", None, 5, None, False, "OSError")],
     ["db_connection_failed"]),
    # two specific failures stay two categories
    ([("db_deadlock", 1, 1, 7, False), ("smtp_failure", 2, 9, 7, False)],
     ["db_deadlock", "smtp_failure"]),
    # Odoo's "Connection to the database failed" gives way to the precise cause, either order
    ([("db_connection_failed", 1, 1, 7, False), ("db_auth_failed", 1, 2, 7, False)],
     ["db_auth_failed"]),
    ([("db_auth_failed", 1, 1, 7, False), ("db_connection_failed", 1, 2, 7, False)],
     ["db_auth_failed"]),
    ([("db_connection_failed", 1, 1, 7, False, "OperationalError"),
      ("unknown", 1, 2, 7, False, "OperationalError")], ["db_connection_failed"]),
    ([("db_connection_failed", 1, 1, 7, False), ("db_deadlock", 1, 2, 7, False)],
     ["db_deadlock", "db_connection_failed"]),
    # another process, or later than the window: another failure
    ([("db_deadlock", 1, 1, 7, False), ("unknown", 2, 9, 8, False)], ["db_deadlock", "unknown"]),
    ([("db_deadlock", 1, 1, 7, False), ("unknown", 30, 9, 7, False)], ["db_deadlock", "unknown"]),
    # raw text (no pid, no timestamp) is close by lines
    ([("python_dependency_missing", None, 1, None, False),
      ("registry_load_failed", 5, 20, 4, True)], ["python_dependency_missing"]),
    ([("python_dependency_missing", None, 1, None, False),
      ("registry_load_failed", 5, 1 + classify.ABSORB_LINES + 1, 4, True)],
     ["python_dependency_missing", "registry_load_failed"]),
])
def test_absorb(findings, kept):
    assert [f.pattern_type for f in classify.absorb([finding(*f) for f in findings])] == kept


# https://github.com/odoo/odoo/pull/57587 (tests/corpus): one failure, two generic records
LOAD_AND_INIT = (
    b"2020-09-17 11:22:57,968 10815 ERROR test odoo.modules.registry: Failed to load registry \n"
    b"2020-09-17 11:22:57,968 10815 CRITICAL test odoo.service.server: "
    b"Failed to initialize database `test`. \n"
    b"Traceback (most recent call last):\n"
    b'  File "/home/odoo/odoo/odoo/odoo/tools/cache.py", line 85, in lookup\n'
    b"    r = d[key]\n")

# https://github.com/odoo/odoo/issues/19368 (tests/corpus): Odoo's INFO line, then the refusal
REFUSED = b"""\
2017-09-10 02:48:20,813 540 INFO db2 odoo.sql_db: Connection to the database failed
2017-09-10 02:48:20,813 540 WARNING db2 odoo.addons.base.ir.ir_cron: Exception in cron:
Traceback (most recent call last):
  File "C:\\Program Files\\Odoo 10.0\\server\\odoo\\sql_db.py", line 586, in borrow
  File "psycopg2\\__init__.pyc", line 164, in connect
OperationalError: could not connect to server: Connection refused (0x0000274D/10061)
"""


@pytest.mark.parametrize("data, kind", [(LOAD_AND_INIT, "registry_load_failed"),
                                        (REFUSED, "db_connection_failed")],
                         ids=["load-and-init", "info-then-refusal"])
def test_a_generic_failure_said_twice_is_one_incident(data, kind):
    findings = list(SCANNER.scan_bytes(data))
    assert [f.pattern_type for f in findings] == [kind, kind]
    assert len(aggregate(findings)) == 1


def test_generic_failures_of_two_databases_are_two_incidents():
    other = LOAD_AND_INIT.replace(b"CRITICAL test", b"CRITICAL other")
    assert len(aggregate(SCANNER.scan_bytes(other))) == 2


# -- record forms ------------------------------------------------------------

def test_docker_prefixes_are_taken_off_every_line():
    # the anchored ^MemoryError alternative of worker_memory_limit needs Odoo's own line start
    data = (b"odoo_1  | 2026-11-29 16:20:01,101 9401 ERROR prod odoo.http: Exception during "
            b"request handling.\nodoo_1  | Traceback (most recent call last):\n"
            b'odoo_1  |   File "/opt/odoo/odoo/http.py", line 2366, in __call__\n'
            b"odoo_1  | MemoryError\n")
    [found] = SCANNER.scan_bytes(data)
    assert (found.pattern_type, found.level, found.logger) == (
        "worker_memory_limit", "ERROR", "odoo.http")


def test_a_console_date_glued_to_every_line_is_taken_off():
    # https://github.com/odoo/odoo/issues/61506 (tests/corpus), shortened
    data = ("6/11/2020 14:26:062020-11-06 17:26:06,425 983 ERROR primicia "
            "odoo.addons.mail.models.mail_mail: failed sending mail (id: 2536) due to Fallo de "
            "entrega de correo\n"
            "6/11/2020 14:26:06La entrega de correo falló vía el servidor SMTP 'None'.\n"
            "6/11/2020 14:26:06Traceback (most recent call last):\n"
            '6/11/2020 14:26:06  File "/home/odoo/src/odoo/odoo/addons/base/models/'
            'ir_mail_server.py", line 501, in send_email\n'
            "6/11/2020 14:26:06smtplib.SMTPRecipientsRefused: {}\n").encode()
    [found] = SCANNER.scan_bytes(data)
    assert (found.pattern_type, found.level, found.database, found.pid, found.exception) == (
        "smtp_failure", "ERROR", "primicia", 983, "smtplib.SMTPRecipientsRefused")
def test_headers_with_their_timestamp_cut_off_are_records():
    # https://github.com/odoo/odoo/issues/193949 (tests/corpus): two records, pid and level kept
    data = (b"28774 INFO ? odoo.modules.graph: module second: Unmet dependencies: first\n"
            b"ERROR db odoo.modules.loading: Some modules are not loaded, some dependencies or "
            b"manifest may be missing: ['second']\n")
    found = SCANNER.scan_bytes(data)
    assert [(f.pattern_type, f.level, f.line) for f in found] == [
        ("module_dependency_missing", "INFO", 1), ("module_dependency_missing", "ERROR", 2)]
