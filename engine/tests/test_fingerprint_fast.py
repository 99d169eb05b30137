"""The fast paths of engine.fingerprint give the results of the plain rules."""

import random

from engine import fingerprint as fp


def test_skipping_rules_a_text_cannot_match_changes_nothing():
    rnd = random.Random(14)
    alphabet = "ab0129 -:/'\"`.xfT\t\n\u00a0\u0663" + "Nov"
    texts = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40)))
             for _ in range(50_000)]
    texts += ["_read_file reading /var/lib/odoo/filestore/prod/3f/3f2a9c1d88e0",
              "Thread <Thread(odoo.service.http.request.139531137182755, started 1)> x",
              "127.0.0.1 - - [29/Nov/2026 14:40:19] \"GET /web HTTP/1.1\" 200 - 3 0.002",
              "session 6f1c2a8e-9b7d-4c3e-8a1f-0d2e3c4b5a69 at 0x7f3a2b1c", "a  b\tc"]
    for text in texts:
        assert fp.normalize.__wrapped__(text) == fp._normalize_by_every_rule(text), repr(text)


def test_the_shape_cache_never_merges_texts_the_rules_keep_apart():
    rnd = random.Random(8)
    for _ in range(20_000):
        text = "".join(rnd.choice("x1259.0 'a-:") for _ in range(rnd.randint(1, 20)))
        other = "".join(rnd.choice("123456789") if c in "123456789" else c for c in text)
        assert (fp.cached_fingerprint("t", text, database="db")
                == fp.fingerprint("t", text, database="db"))
        assert (fp.cached_fingerprint("t", other, database="db")
                == fp.fingerprint("t", other, database="db"))


def test_the_string_and_zero_shape_never_merges_texts_the_rules_keep_apart():
    """Texts that differ in quoted strings or in any digit share a shape key;
    whatever the cache gives them is what the rules give (issue 14)."""
    rnd = random.Random(14)
    alphabet = "x0125 -:/'\"`.af\n" + "2026-11-29 10:00:00 "

    def vary(text):
        out, quote = [], None
        for char in text:
            if quote is None and char in "'\"`":
                quote = char
            elif char == quote:
                quote = None
            elif quote is not None and char != "\n" and rnd.random() < 0.5:
                char = rnd.choice("ab1 -:/x" if char not in "'\"`" else char)
            elif char.isdigit():
                char = rnd.choice("0123456789")
            out.append(char)
        return "".join(out)

    fp._by_shape.clear()
    for _ in range(20_000):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 30)))
        for variant in (text, vary(text), vary(text)):
            assert (fp.cached_fingerprint("t", variant, database="db")
                    == fp.fingerprint("t", variant, database="db")), repr(variant)


def test_records_that_differ_in_volatile_values_normalize_once(monkeypatch):
    calls = []
    real = fp.normalize
    monkeypatch.setattr(fp, "normalize", lambda text: calls.append(text) or real(text))
    fp._by_shape.clear()
    for number in range(50):
        # ids and durations of one width (a shape keeps lengths), 0 among the digits
        fp.cached_fingerprint("access_denied", f"Invalid field 'x_{number}' on model "
                              f"'res.partner' (id {1000 + number * 37}, {100 + number * 3} ms)",
                              database="prod")
    assert len(calls) == 1
