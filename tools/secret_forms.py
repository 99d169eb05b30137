"""Every form of secret the masker must hide, as Odoo log records, for the sink tests.

Shared by the engine's unit tests, the watchdog's sink tests (pytest, a real
``bin/auto-heal``) and the addon's (Odoo tests on real rows). Each form is one
Odoo log record whose first line carries a marker, ``AHFORM_<name>``, so a
test proves the text reached a sink (the marker is there) and that the secret
did not (none of the form's secret fragments is). :data:`CATCH_ALL` is a
pattern that copies any such record into an incident, as a careless catch-all
pattern would.

>>> sorted(FORMS) == sorted(FORM_NAMES)
True
>>> all(FORMS[name].marker in FORMS[name].record() for name in FORMS)
True
"""

from dataclasses import dataclass

#: A pattern matching every form's record (``"form"`` captures the form's name).
CATCH_ALL = {
    "type": "ah_secret_catch_all", "regex": r"AHFORM_(?P<form>[a-z_]+)", "severity": "high",
    "auto_fix": False, "fix_script": "", "description": "catches every test form",
}

HEADER = "2026-11-29 14:40:{second:02d},045 4242 ERROR prod odoo.addons.ah_forms: "

#: A private key's body (not a real key: base64 of nothing in particular).
_PEM_BODY = [
    "MIIEpAIBAAKCAQEAPemBodyLine01xQk9wJm3rM2T1a7dUo5cSgH4yZ0bV8nW2e",
    "PemBodyLine02Yh3LkWq9Ue8Rj5Tn2Mv6Xb1Cz4Ad7Fg0Hs3Jk6Lp9Qr2Sv5Tw8U",
    "PemBodyLine03Zx1Cv4Bn7Mq0Wr3Ty6Ui9Op2As5Df8Gh1Jk4Lz7Xc0Vb3Nm6Q9",
]


@dataclass(frozen=True)
class Form:
    name: str
    #: the record's text after its header (first line = message), newline separated
    text: str
    #: fragments that must never reach a sink
    secrets: tuple

    def record(self, second=0):
        return HEADER.format(second=second % 60) + self.text + "\n"

    @property
    def marker(self):
        return f"AHFORM_{self.name}"


def _dense_urls(count, prefix):
    """A line of *count* DSNs, each with its own password: a cut anywhere in it
    (at 200, 250, 500 characters, a sample's half...) lands inside or next to one."""
    return " ".join(f"postgresql://odoo:{prefix}{n:04d}x@db{n}/prod" for n in range(count))


def _forms():
    pem = "\n".join(["-----BEGIN RSA PRIVATE KEY-----", *_PEM_BODY,
                     "-----END RSA PRIVATE KEY-----"])
    pem_repr = "\\n".join(["-----BEGIN PRIVATE KEY-----", *(line.replace("Pem", "Rep")
                                                            for line in _PEM_BODY),
                           "-----END PRIVATE KEY-----"])
    # a key whose BEGIN line falls in the lines a sample drops (head 30, tail 15 lines)
    long_pem = "\n".join(["-----BEGIN PRIVATE KEY-----"] + [
        f"LongPemBody{n:03d}AAAAB3NzaC1yc2EAAAADAQABAAABAQC7{n:03d}" for n in range(40)]
        + ["-----END PRIVATE KEY-----"])
    forms = [
        Form("url", "AHFORM_url connect failed: postgresql://odoo:Urlpw7x9q@db:5432/prod",
             ("Urlpw7x9q",)),
        Form("session_cookie", "AHFORM_session_cookie request headers: Cookie: "
             "frontend_lang=en_US; session_id=Sess1dCafe0042beef; tz=UTC",
             ("Sess1dCafe0042beef",)),
        Form("pgpassword", "AHFORM_pgpassword pg_dump failed: env PGPASSWORD=Pgpw5ecr3tZ "
             "PGUSER=odoo", ("Pgpw5ecr3tZ",)),
        Form("libpq_quoted", "AHFORM_libpq_quoted connection to server failed: host=db "
             "password='Lqpw1 has \\'Lqpw2 inside' user=odoo", ("Lqpw1", "Lqpw2")),
        Form("compound_keys", 'AHFORM_compound_keys oauth reply {"oauth_access_token": '
             '"ya29.Oauth1tok", "AWS_SECRET_ACCESS_KEY": "wJalrAwsKey9"} sent '
             "x-api-key: Xapik3y77Q client_secret=\"Cl1entSecr 2\"",
             ("Oauth1tok", "wJalrAwsKey9", "Xapik3y77Q", "Cl1entSecr")),
        Form("odoo_conf_spaces", "AHFORM_odoo_conf_spaces Source contains parsing errors: "
             "'/etc/odoo/odoo.conf' [line  3]: 'admin_passwd = Adm1nPw secret Pass2Word\\n'"
             "\nconfig dump:\nadmin_passwd = Adm1nPw secret Pass2Word\n"
             "db_password = DbPw0 with spaces",
             ("Adm1nPw", "Pass2Word", "DbPw0", "with spaces")),
        Form("cut_value", "AHFORM_cut_value retries: " + _dense_urls(130, "Zq") + "\n"
             + _dense_urls(130, "Zq") + " password='Zqend", ("Zq",)),
        Form("pem", "AHFORM_pem loaded key " + pem_repr + "\n" + pem,
             ("PemBody", "RepBody")),
        Form("pem_cut", "AHFORM_pem_cut private key follows\n" + long_pem,
             ("LongPemBody", "AAAAB3NzaC1yc2E")),
    ]
    return {form.name: form for form in forms}


FORMS = _forms()
FORM_NAMES = tuple(FORMS)


def log_text():
    """All the forms' records, one after the other, as an Odoo log file holds them."""
    return "".join(form.record(second) for second, form in enumerate(FORMS.values()))


def leaks(text, form):
    """The secret fragments of *form* found in *text* (empty: none leaked)."""
    return [secret for secret in form.secrets if secret in text]
