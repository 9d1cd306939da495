"""What each audit event, outcome and channel is called on a page, in the citizen's words.

The audit log keeps internal names (``card.recover``, ``wrong_code``, ``app_qr``); a page never
shows one. Every kind, outcome and channel that the code records has a label here, in both
languages: ``chave/audit/tests/test_labels.py`` reads the code for what it records and fails when
one lacks a label, and the test session checks every event it saw written (``chave/conftest.py``).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

# --- Kinds ----------------------------------------------------------------------------------------

EVENTS = {
    # Signing in and out
    "login": _("Sign-in"),
    "logout": _("Sign-out"),
    "oidc.authorize": _("Sign-in to a portal"),
    "saml.authorize": _("Sign-in to a portal"),
    "oidc.consent": _("Data shared with a portal"),
    "saml.consent": _("Data shared with a portal"),
    "oidc.logout": _("Signed out of portals"),
    "oidc.backchannel_logout": _("Portal told of a sign-out"),
    "saml.backchannel_logout": _("Portal told of a sign-out (SAML)"),
    "oidc.token": _("Portal received its sign-in answer"),
    "oidc.refresh_reuse": _("A portal's old sign-in token was used again"),
    "oidc.revoke": _("A portal gave up its access"),
    "oidc.keys_activated": _("New signing keys for portals in use"),
    "oidc.keys_rotated": _("Signing keys for portals replaced"),
    "saml.authn": _("Sign-in answer to a portal (SAML)"),
    "saml.replay": _("A portal's sign-in request was sent again and refused"),
    "saml.key_made": _("Signing key for SAML portals made"),
    "saml.key_rotated": _("Signing key for SAML portals replaced"),
    # PIN and codes
    "pin.attempt": _("PIN typed"),
    "pin.change": _("PIN changed"),
    "pin.temporary": _("Temporary PIN issued"),
    "pin.void": _("PIN cancelled"),
    "pin.restore": _("Previous PIN in use again"),
    "code.send": _("Security code sent"),
    "code.verify": _("Security code typed"),
    # The key's life
    "key.register": _("Key registered"),
    "key.activate": _("Key activated"),
    "key.locked": _("Key locked for a while after wrong PINs"),
    "key.blocked": _("Key blocked"),
    "key.unlock": _("Key unlocked"),
    "key.cancel": _("Key cancelled"),
    "key.revoke": _("Key cancelled because it was not used"),
    "key.expire": _("Key expired"),
    "key.renew": _("Key renewed with the identity document"),
    "key.new_document": _("Key renewed with a new identity document (new number)"),
    "key.reminder": _("Reminder sent about the key"),
    "contact.change": _("Contact changed"),
    "contact.verify": _("Contact confirmed"),
    "message.delivery": _("Message delivery"),
    # Citizen Card
    "card.challenge": _("Citizen Card reading started"),
    "card.answer": _("Citizen Card read"),
    "card.finish": _("Citizen Card reading finished"),
    "card.recover": _("Key recovered with the Citizen Card"),
    "card.register.start": _("Registration with the Citizen Card started"),
    "card.register.finish": _("Key registered with the Citizen Card"),
    # Personal area
    "area.export": _("Data exported"),
    "area.not_me": _("Reported as not you"),
    "area.sessions_ended": _("Sessions ended"),
    "terms.accept": _("Terms of use accepted"),
    # Chave app
    "app.paired": _("Chave app added"),
    "app.removed": _("Chave app removed"),
    "app.rename": _("Chave app renamed"),
    "app.settings": _("Chave app settings changed"),
    "app.signature": _("Chave app message refused"),
    "app.approval": _("Sign-in approval in the Chave app"),
    "app.qr": _("Sign-in with the Chave app (QR code)"),
    "app.pairing": _("Adding the Chave app"),
    # Signing
    "signing.activate": _("Signing activated"),
    "signing.revoke": _("Signing cancelled"),
    "signing.reissue": _("Signing certificate renewed with the identity document"),
    "signing.pin": _("Signing PIN typed"),
    "signing.pin_change": _("Signing PIN changed"),
    "signing.request": _("Signature requested"),
    "signing.authorise": _("Signature authorised with a security code"),
    "signing.sign": _("Document signed"),
    "signing.validate": _("Signed document checked"),
    "signing.api": _("Signing service used by a portal"),
    # Counter and letters
    "counter.register": _("Key registered at a counter"),
    "counter.unlock": _("Key unlocked at a counter"),
    "counter.new_pin": _("New PIN by letter requested at a counter"),
    "counter.cancel": _("Key cancelled at a counter"),
    "counter.contact": _("Contact changed at a counter"),
    "counter.letter_cancel": _("Letter cancelled at a counter"),
    "counter.app_remove": _("Chave app removed at a counter"),
    "counter.signing": _("Signing activated at a counter"),
    "counter.renew": _("Renewed identity document recorded at a counter"),
    "counter.reverse": _("Counter action reversed"),
    "counter.find": _("Citizen looked up at a counter"),
    "counter.view": _("Citizen's page seen at a counter"),
    "counter.refused": _("Counter action refused"),
    "counter.screen_pairing": _("Citizen screen paired with a desk"),
    "letter.produce": _("Letter with a PIN prepared"),
    "letter.print": _("Letter printing"),
    "letter.print_again": _("Letter printed again"),
    "letter.batch": _("Letters grouped for posting"),
    "letter.batch_download": _("Letters downloaded for printing"),
    "letter.posted": _("Letter posted"),
    "letter.handed": _("Letter handed over at a counter"),
    "letter.cancel": _("Letter cancelled"),
    "staff.add": _("Staff member added"),
    "staff.sign_in": _("Staff sign-in"),
    # Portals and integrators
    "rp.register": _("Portal registration requested"),
    "rp.requested": _("Portal sent back for review"),
    "rp.approved": _("Portal approved"),
    "rp.suspended": _("Portal suspended"),
    "rp.reinstated": _("Portal reinstated"),
    "rp.keys_changed": _("Portal keys changed"),
    "rp.secret_rotated": _("Portal secret replaced"),
    "rp.settings_changed": _("Portal settings changed"),
    "saml.metadata_replaced": _("Portal's SAML metadata replaced"),
    "scmd.integrator_add": _("Signing integrator added"),
    "scmd.integrator_enable": _("Signing integrator enabled"),
    "scmd.integrator_disable": _("Signing integrator disabled"),
    "scmd.integrator_rotate": _("Signing integrator credentials replaced"),
}

# Kinds that record something that happened to the key rather than an attempt: "Successful" would
# be wrong there (a temporary lock is not a success for the citizen), so no outcome is shown.
HAPPENED = {
    "key.locked", "key.blocked", "key.expire", "key.renew", "key.new_document", "key.revoke", "key.reminder", "key.cancel", "key.unlock",
    "pin.restore",
    "pin.temporary", "pin.void", "area.not_me", "area.sessions_ended", "app.removed", "letter.produce",
    "letter.posted", "letter.handed", "letter.cancel", "counter.reverse", "oidc.logout",
}

# --- Outcomes -------------------------------------------------------------------------------------

SUCCESSFUL = {"ok", "sent", "granted", "found", "paired", "started", "delivered"}

OUTCOMES = {
    "ok": _("Successful"),
    "sent": _("Sent"),
    "granted": _("Allowed"),
    "refused": _("Not allowed"),
    "abandoned": _("Cancelled: back to the portal"),
    "found": _("Found"),
    "logout": _("Signed out"),
    "none": _("Nothing found"),
    "paired": _("Paired"),
    "started": _("Started"),
    "retry": _("Not done yet: will be tried again"),
    "failed": _("Failed"),
    "delivered": _("Delivered"),
    "queued": _("Waiting to be sent"),
    "sending": _("Being sent"),
    "expired": _("Expired"),
    "interrupted": _("Interrupted: it may not have arrived"),
    # PIN and key
    "wrong": _("Wrong"),
    "wrong_pin": _("Wrong PIN"),
    "unknown": _("Not recognised"),
    "throttled": _("Too many attempts: refused for a while"),
    "rate_limited": _("Too many codes sent recently: refused for a while"),
    "locked": _("Refused: the key was locked for a while"),
    "blocked": _("Refused: the key is blocked"),
    "cancelled": _("Refused: the key is cancelled"),
    "pending": _("Refused: the key is not active yet"),
    "temporary_pin_expired": _("Refused: the temporary PIN had expired"),
    "temporary_pin": _("Refused: the temporary PIN must be changed first"),
    "must_change": _("Refused: a new PIN must be chosen first"),
    "not_active": _("Refused: signing is not active"),
    # Codes
    "cooldown": _("Refused: asked again too soon"),
    "too_many_sends": _("Refused: too many codes asked for"),
    "country_not_allowed": _("Refused: SMS cannot be sent to this country"),
    "no_channel": _("Refused: no contact can receive codes"),
    "wrong_code": _("Wrong code"),
    "code_expired": _("The code had expired or was used"),
    "code_not_sent": _("The code could not be sent"),
    "used": _("The code was already used"),
    "spent": _("Too many wrong codes: the code stopped working"),
    "invalidated": _("The code was replaced by a newer one"),
    "no_code": _("No code was asked for"),
    "malformed": _("Not readable"),
    "used_or_expired": _("Already used or expired"),
    "stale_or_unknown": _("Unknown or out of date"),
    "replayed": _("Refused: already used"),
    # Chave app
    "declined": _("Declined"),
    "reported": _("Reported as not you"),
    "wrong_number": _("Wrong number chosen"),
    "bad_signature": _("Refused: the signature is not valid"),
    "clock_skew": _("Refused: the device's clock is wrong"),
    "unknown_device": _("Refused: unknown device"),
    "unsigned": _("Refused: not signed"),
    "revoked": _("Revoked"),
    # Citizen Card
    "no_challenge": _("Refused: the reading had not started"),
    "expired_challenge": _("Refused: the reading took too long"),
    "other_session": _("Refused: started in another browser"),
    "wrong_origin": _("Refused: came from another site"),
    "no_identity": _("Refused: no identity on the card"),
    "not_yet_valid": _("Refused: the card is not valid yet"),
    "not_configured": _("Refused: card checks are not set up"),
    "untrusted": _("Refused: the card was not issued by a trusted authority"),
    "key_usage": _("Refused: the card's certificate cannot be used for this"),
    "revocation_unknown": _("Refused: the card's status could not be checked"),
    "unknown_card": _("Refused: unknown card"),
    # Signing
    "too_many_hashes": _("Refused: too many documents at once"),
    "sad_invalid": _("Refused: the authorisation is not valid"),
    "sad_expired": _("Refused: the authorisation expired"),
    "hashes_differ": _("Refused: different documents from those authorised"),
    "wrong_credential": _("Refused: another signing certificate"),
    # Counter
    "forbidden": _("Refused: not allowed for this role"),
}

# --- Channels (how it was done) -------------------------------------------------------------------

CHANNELS = {
    "sms": _("Key, code by SMS"),
    "email": _("Key, code by e-mail"),
    "x": _("Key, code by X direct message"),
    "citizen_card": _("Citizen Card"),
    "web": _("On the Chave website"),
    "area": _("On the Chave website"),
    "app": _("Key, code by the Chave app"),
    "app_offline": _("Key, offline code from the Chave app"),
    "app_approve": _("Key, approved in the Chave app"),
    "app_qr": _("Chave app and PIN (QR code)"),
    "counter": _("At a counter"),
    "cli": _("By the service's administrators"),
    "housekeeping": _("Automatically, by the service"),
    "registry": _("From the civil records"),
    "oidc": _("By a portal"),
    "csc": _("By a portal's signing service"),
    "scmd": _("By a portal's signing service"),
    "cmd": _("By a portal's signing service"),
}


def _http_outcome(outcome: str):
    """``signing.api`` records the HTTP status it answered: said in words by its class."""
    if outcome.isdigit() and len(outcome) == 3:
        return {"2": _("Successful"), "4": _("Refused"), "5": _("Failed")}.get(outcome[0], _("Failed"))
    return None


def event_label(kind: str) -> str:
    return str(EVENTS.get(str(kind)) or _("Security event"))


def outcome_label(outcome: str) -> str:
    outcome = str(outcome or "")
    label = OUTCOMES.get(outcome) or _http_outcome(outcome)
    return str(label) if label else str(_("Not successful"))


def channel_label(channel: str) -> str:
    return str(CHANNELS.get(str(channel), "")) if channel else ""


def successful(outcome: str) -> bool:
    outcome = str(outcome or "")
    return outcome in SUCCESSFUL or (outcome.isdigit() and outcome.startswith("2"))


def shows_outcome(kind: str) -> bool:
    return str(kind) not in HAPPENED


def missing(kind: str, outcome: str, channel: str) -> list[str]:
    """Which of an event's names have no label (empty: all have one). A model's choice (``Via.SCMD``)
    counts as its value."""
    kind, outcome, channel = str(kind or ""), str(outcome or ""), str(channel or "")
    gaps = []
    if kind not in EVENTS:
        gaps.append(f"event {kind!r}")
    if outcome and outcome not in OUTCOMES and _http_outcome(outcome) is None:
        gaps.append(f"outcome {outcome!r} (of {kind})")
    if channel and channel not in CHANNELS:
        gaps.append(f"channel {channel!r} (of {kind})")
    return gaps
