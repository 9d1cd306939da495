"""The texts a citizen receives: the portal named, the warning, and the WebOTP line last."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from chave.delivery.messages import code_in, code_message, notice_message

pytestmark = pytest.mark.once  # the same on any database: SQLite pass only


FIVE_MINUTES = dt.timedelta(minutes=5)


def test_code_message_in_english_names_the_portal_warns_and_ends_with_the_webotp_line(settings):
    settings.CHAVE_PUBLIC_URL = "https://chave.gov.example:8443/"

    text = code_message(purpose="login", code="048213", portal="Portal das Finanças", lifetime=FIVE_MINUTES,
                        language="en", channel="sms")

    assert text.subject == "Your Chave security code"
    assert "to sign in to Portal das Finanças" in text.body
    assert "valid for 5 minutes" in text.body
    assert "Never share it" in text.body
    # WebOTP (origin-bound one-time codes): the last line is "@<host> #<code>", the host without port.
    assert text.body.splitlines()[-1] == "@chave.gov.example #048213"
    assert text.body.count("048213") == 2


@pytest.mark.parametrize("channel", ["email", "x"])
def test_an_e_mail_or_direct_message_has_no_webotp_line(settings, channel):
    """Only a phone's browser reads the WebOTP line from an SMS: elsewhere it is noise to a person."""
    text = code_message(purpose="login", code="048213", portal="Portal das Finanças", lifetime=FIVE_MINUTES,
                        language="pt-pt", channel=channel)
    assert "#" not in text.body and "@" not in text.body and text.body.count("048213") == 1
    assert "para se autenticar em Portal das Finanças" in text.body
    assert code_in(text.body) == "048213" and code_in(text.redacted) is None


def test_the_redacted_copy_kept_after_sending_has_no_code(settings):
    text = code_message(purpose="signing", code="731905", portal="Portal do Cidadão", lifetime=FIVE_MINUTES,
                        language="en", channel="sms")

    assert "731905" not in text.redacted
    assert "Portal do Cidadão" in text.redacted
    assert text.redacted.endswith("#••••••")


@pytest.mark.parametrize("purpose", ["login", "contact", "signing"])
def test_every_purpose_has_its_own_wording(purpose):
    text = code_message(purpose=purpose, code="123450", portal="Portal X", lifetime=FIVE_MINUTES, language="en")

    assert re.search(r"your security code to \w", text.body)  # never an empty "code  is"


@pytest.mark.parametrize(("task", "english", "portuguese"), [
    ("pin_change", "to change the PIN of your Digital Mobile Key", "alterar o PIN da sua Chave Móvel Digital"),
    ("recover", "new PIN for your Digital Mobile Key with your Citizen Card", "Cartão de Cidadão"),
])
def test_a_code_for_a_change_to_the_key_says_so_instead_of_signing_in(task, english, portuguese):
    text = code_message(purpose="login", code="123450", portal="the Chave personal area", lifetime=FIVE_MINUTES,
                        language="en", task=task)
    assert english in text.body and "sign in" not in text.body
    assert portuguese in code_message(purpose="login", code="123450", portal="", lifetime=FIVE_MINUTES,
                                      language="pt-pt", task=task).body


def test_code_message_in_portuguese():
    text = code_message(purpose="login", code="048213", portal="Portal das Finanças", lifetime=FIVE_MINUTES,
                        language="pt-pt", channel="sms")
    english = code_message(purpose="login", code="048213", portal="Portal das Finanças", lifetime=FIVE_MINUTES,
                           language="en")

    assert text.subject == "O seu código de segurança Chave"
    assert text.body != english.body
    assert "Portal das Finanças" in text.body
    assert "5 minutos" in text.body
    assert "partilhe" in text.body  # the warning not to share it
    assert text.body.splitlines()[-1] == "@127.0.0.1 #048213"
    # Chave itself reads naturally: "na Chave", not "em Chave".
    own = code_message(purpose="login", code="048213", portal="Chave", lifetime=FIVE_MINUTES, language="pt-pt")
    assert "para se autenticar na Chave é 048213" in own.body


def test_notices_carry_no_code_and_name_where_to_get_help(settings):
    settings.CHAVE_HELP_EMAIL = "ajuda@chave.gov.example"

    for event in ("locked", "blocked", "pin_changed", "registered", "contact_changed"):
        text = notice_message(event, language="en", until=dt.datetime(2030, 1, 2, 3, 4, tzinfo=dt.timezone.utc))
        assert "ajuda@chave.gov.example" in text.body
        assert text.redacted == text.body
        assert "#" not in text.body
