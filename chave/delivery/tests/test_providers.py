"""Each provider against its real gateway on 127.0.0.1: what arrives, and how failures are read.

Kannel (bearerbox + smsbox + fakesmsc), an aiosmtpd SMTP server and a local X API v2 server:
a temporary failure must come back as ``TemporaryFailure`` (the worker retries), a refusal as
``PermanentFailure`` (it does not).
"""

from __future__ import annotations

import pytest

from chave.delivery.providers import PermanentFailure, TemporaryFailure, provider_for
from chave.delivery.providers.kannel import KannelSms
from chave.delivery.providers.smtp import SmtpEmail
from chave.delivery.providers.xapi import XDirectMessage

pytestmark = pytest.mark.gateway

PHONE = "+351912345678"
# Longer than one UCS-2 SMS (70 characters): Kannel splits it, the phone joins it again.
LONG_PT = (
    "Chave: o seu código de segurança para entrar no Portal das Finanças é 482913. É válido durante "
    "5 minutos. Não o partilhe com ninguém, nem com funcionários da Chave.\n\n@chave.gov.pt #482913"
)
SHORT_PT = "Olá, João! Código: 731905. Não o partilhe."


# --- Kannel -----------------------------------------------------------------------------------


def test_kannel_delivers_a_short_sms_with_portuguese_accents(kannel):
    receipt = KannelSms().submit_message(PHONE, SHORT_PT)

    assert receipt == "0: Accepted for delivery"
    [sms] = kannel.wait_for_sms(PHONE)
    assert (sms.sender, sms.to, sms.text, sms.parts) == ("Chave", PHONE, SHORT_PT, 1)


def test_kannel_delivers_a_long_sms_in_parts_the_phone_joins(kannel):
    KannelSms().submit_message(PHONE, LONG_PT)

    [sms] = kannel.wait_for_sms(PHONE)
    assert sms.text == LONG_PT
    assert sms.parts == 3  # 152 UCS-2 characters: 67 per concatenated part
    assert sms.text.endswith("\n\n@chave.gov.pt #482913")


def test_kannel_without_its_smsc_is_a_temporary_failure(kannel):
    kannel.stop_smsc()

    with pytest.raises(TemporaryFailure, match="503"):
        KannelSms().submit_message(PHONE, SHORT_PT)


def test_kannel_refusing_our_credentials_is_permanent(kannel, settings):
    settings.CHAVE_KANNEL_PASSWORD = "wrong"

    with pytest.raises(PermanentFailure, match="403: Authorization failed for sendsms"):
        KannelSms().submit_message(PHONE, SHORT_PT)
    assert kannel.received() == []


def test_kannel_refusing_a_number_is_permanent(kannel):
    with pytest.raises(PermanentFailure, match="400"):
        KannelSms().submit_message("not-a-number", SHORT_PT)


def test_kannel_down_is_a_temporary_failure(settings, closed_port):
    settings.CHAVE_KANNEL_URL = f"http://127.0.0.1:{closed_port}/cgi-bin/sendsms"

    with pytest.raises(TemporaryFailure, match="unreachable"):
        KannelSms().submit_message(PHONE, SHORT_PT)


def test_kannel_immediate_reply_sent_counts_as_accepted(kannel, settings):
    # With immediate-sendsms-reply, smsbox answers 202 "Sent." before bearerbox acknowledges.
    with kannel.extra_smsbox("immediate-sendsms-reply = true") as url:
        settings.CHAVE_KANNEL_URL = url
        receipt = KannelSms().submit_message(PHONE, SHORT_PT)

    assert receipt == "Sent."
    [sms] = kannel.wait_for_sms(PHONE)
    assert sms.text == SHORT_PT


# --- SMTP -------------------------------------------------------------------------------------


def test_smtp_delivers_subject_from_to_and_utf8_body(smtp_server, settings):
    settings.DEFAULT_FROM_EMAIL = "Chave <no-reply@chave.gov.example>"

    reference = SmtpEmail().submit_message("maria@example.pt", LONG_PT, "O seu código de segurança Chave")

    [mail] = smtp_server.received
    assert mail.rcpt_tos == ["maria@example.pt"]
    assert mail.mail_from == "no-reply@chave.gov.example"
    assert mail.message["From"] == "Chave <no-reply@chave.gov.example>"
    assert mail.message["To"] == "maria@example.pt"
    assert mail.message["Subject"] == "O seu código de segurança Chave"
    assert mail.message.get_content_charset() == "utf-8"
    assert mail.body.rstrip("\n") == LONG_PT
    assert reference and mail.message["Message-ID"] == reference


def test_smtp_permanent_refusal_of_the_recipient(smtp_server):
    smtp_server.refuse["gone@example.pt"] = "550 5.1.1 No such user"

    with pytest.raises(PermanentFailure, match="550"):
        SmtpEmail().submit_message("gone@example.pt", SHORT_PT, "Chave")
    assert smtp_server.received == []


def test_smtp_deferral_of_the_recipient_is_temporary(smtp_server):
    smtp_server.refuse["busy@example.pt"] = "451 4.3.0 Try again later"

    with pytest.raises(TemporaryFailure, match="451"):
        SmtpEmail().submit_message("busy@example.pt", SHORT_PT, "Chave")


def test_smtp_server_down_is_temporary(settings, closed_port):
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", closed_port

    with pytest.raises(TemporaryFailure, match="ConnectionRefusedError"):
        SmtpEmail().submit_message("maria@example.pt", SHORT_PT, "Chave")


# --- X API v2 -----------------------------------------------------------------------------------


def test_x_direct_message_reaches_the_participant(x_api):
    reference = XDirectMessage().submit_message("1234567890", LONG_PT)

    [dm] = x_api.delivered
    assert (dm.participant_id, dm.text) == ("1234567890", LONG_PT)
    assert dm.authorization == f"Bearer {x_api.token}"
    assert reference == "1800000000000000001"  # the dm_event_id X answered


def test_x_refusing_our_token_is_permanent(x_api, settings):
    settings.CHAVE_X_BEARER_TOKEN = "expired-token"

    with pytest.raises(PermanentFailure, match="401"):
        XDirectMessage().submit_message("1234567890", SHORT_PT)
    assert x_api.delivered == []


@pytest.mark.parametrize("status", [429, 503])
def test_x_throttling_or_outage_is_temporary(x_api, status):
    x_api.fail_with = [status]

    with pytest.raises(TemporaryFailure, match=str(status)):
        XDirectMessage().submit_message("1234567890", SHORT_PT)
    assert x_api.delivered == []


def test_x_destination_must_be_a_numeric_user_id(x_api):
    with pytest.raises(PermanentFailure, match="numeric user id"):
        XDirectMessage().submit_message("@maria", SHORT_PT)
    assert x_api.requests == 0


def test_x_api_down_is_temporary(x_api, settings, closed_port):
    settings.CHAVE_X_API_URL = f"http://127.0.0.1:{closed_port}"

    with pytest.raises(TemporaryFailure, match="unreachable"):
        XDirectMessage().submit_message("1234567890", SHORT_PT)


# --- Choice of provider -------------------------------------------------------------------------


def test_the_provider_of_a_channel_comes_from_settings(settings):
    settings.CHAVE_SMS_PROVIDER, settings.CHAVE_EMAIL_PROVIDER, settings.CHAVE_X_PROVIDER = "kannel", "smtp", "off"

    assert provider_for("sms").name == "kannel"
    assert provider_for("email").name == "smtp"
    assert provider_for("x") is None  # off: not offered
