"""The federation's decisions, shared by every protocol door (OpenID Connect, SAML 2.0).

- The registry's decisions: approve, suspend, reinstate a relying party (:func:`decide`).
- The login decision: whether the citizen must (re)authenticate for a request, and at which
  level at least (:func:`login_decision`); each door turns its protocol's parameters (OIDC
  ``acr_values``/``prompt``/``max_age``, SAML ``FAAALevel``/``ForceAuthn``) into its inputs.
- Consent: what the citizen shared with (or refused to) each party (:func:`consent_state`,
  :func:`record_consent`, :func:`revoke_consent`).
- Single sign-on: the browser's SSO session, which records the parties it served so that
  logout reaches all of them (:func:`sso_session`).

Every write goes through here; views, commands, the counter and the admin call these.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from chave import clock
from chave.audit import services as audit
from chave.compiled import Compiled, Inserter, first

from .models import Consent, RelyingParty, RelyingPartyEvent, SsoSession
from .signals import approving, consent_revoked

_CONSENT = Compiled(lambda citizen, party: first(Consent.objects.filter(citizen_id=citizen, relying_party_id=party)),
                    int, int)
_OPEN_SSO = Compiled(lambda sid, key: first(SsoSession.objects.filter(sid=sid, key_id=key, ended_at__isnull=True)),
                     str, int)
_NEW_SSO = Inserter(SsoSession)

SESSION_SSO = "chave.oidc.sso"
REASON_MAX_LENGTH = RelyingPartyEvent._meta.get_field("reason").max_length


# --- The registry's decisions ------------------------------------------------------------------

def check_reason(reason: str) -> str:
    reason = " ".join(str(reason or "").split())
    if len(reason) > REASON_MAX_LENGTH:
        raise ValidationError(_("The reason is too long (at most %(max)d characters)."), code="reason_too_long",
                              params={"max": REASON_MAX_LENGTH})
    return reason


def check_registration(errors: dict, *, name, entity_nif, contact_email, allowed_attributes, mandatory_attributes,
                       min_level):
    """The registration fields every protocol's portal has (name, NIF, contact, attributes, minimum
    level), cleaned: returns them in that order; each problem is added to ``errors`` under the
    field's name (``name``, ``entity_nif``, ``contact_email``, ``allowed_attributes``,
    ``mandatory_attributes``, ``min_level``) as a ``ValidationError``; the caller raises."""
    from chave import policy
    from chave.identity.validation import parse_email, parse_nif

    from .attributes import ATTRIBUTES
    from .levels import LEVEL_URIS

    def check(field_name, function, value):
        try:
            return function(value)
        except ValidationError as exc:
            errors.setdefault(field_name, []).append(exc)
            return None

    name = " ".join(str(name or "").split())
    if not name or len(name) > 200:
        errors["name"] = [ValidationError(_("Give the entity's name (at most 200 characters)."), code="name_invalid")]
    entity_nif = check("entity_nif", parse_nif, entity_nif)
    contact_email = check("contact_email", parse_email, contact_email)
    allowed_attributes = list(dict.fromkeys(allowed_attributes or []))
    mandatory_attributes = list(dict.fromkeys(mandatory_attributes or []))
    for field_name, names in (("allowed_attributes", allowed_attributes),
                              ("mandatory_attributes", mandatory_attributes)):
        unknown = [str(a) for a in names if a not in ATTRIBUTES]
        if unknown:
            errors[field_name] = [ValidationError(
                _("Unknown attributes: %(names)s. Known: %(known)s."), code="attribute_unknown",
                params={"names": ", ".join(unknown), "known": ", ".join(ATTRIBUTES)})]
    if "mandatory_attributes" not in errors and not set(mandatory_attributes) <= set(allowed_attributes):
        errors["mandatory_attributes"] = [ValidationError(
            _("Mandatory attributes must also be allowed: %(names)s."), code="attribute_mandatory",
            params={"names": ", ".join(a for a in mandatory_attributes if a not in allowed_attributes)})]
    level = policy.get("rp_default_min_level") if min_level is None else min_level
    if isinstance(level, bool) or level not in LEVEL_URIS:
        errors["min_level"] = [ValidationError(_("The minimum level is 2, 3 or 4."), code="level_invalid")]
    return name, entity_nif, contact_email, allowed_attributes, mandatory_attributes, level


# action → (states it may start from, state it leads to)
_MOVES = {
    "approve": ({RelyingParty.State.REQUESTED, RelyingParty.State.SUSPENDED}, RelyingParty.State.APPROVED),
    "suspend": ({RelyingParty.State.APPROVED}, RelyingParty.State.SUSPENDED),
}


def _refusal(state: str, action: str) -> ValidationError:
    if action == "approve":
        message = _("This portal is already approved.")
    elif state == RelyingParty.State.SUSPENDED:
        message = _("This portal is already suspended.")
    else:
        message = _("This portal is still awaiting approval: there is nothing to suspend yet.")
    return ValidationError(message, code="illegal_state")


def decide(relying_party: RelyingParty, action: str, *, by: str, reason: str = "") -> RelyingParty:
    """Approve (``requested`` → ``approved``), suspend (``approved`` → ``suspended``) or reinstate
    (``approve`` of a suspended party) a relying party; returns it in its new state.

    Suspension stops new logins, code redemption, token refresh and userinfo at once. Each decision
    is kept in the party's history (``RelyingPartyEvent``: approved, suspended, reinstated, with
    ``by`` and ``reason``) and audited. Raises ``ValidationError`` (code ``illegal_state``) for a
    move the states do not allow, or (``reason_too_long``) for a reason over 500 characters, or
    when a door's check of :data:`~chave.federation.signals.approving` refuses the approval;
    ``ValueError`` for an unknown action.
    """
    if action not in _MOVES:
        raise ValueError(f"unknown decision {action!r}")
    sources, target = _MOVES[action]
    reason = check_reason(reason)
    if action == "approve":
        # Each door's own checks (they may read the network, so before any row is locked).
        approving.send(sender=RelyingParty, relying_party=relying_party)
    now = clock.now()
    with transaction.atomic():
        relying_party = RelyingParty.objects.select_for_update().get(pk=relying_party.pk)
        if relying_party.state not in sources:
            raise _refusal(relying_party.state, action)
        recorded = "reinstated" if relying_party.state == RelyingParty.State.SUSPENDED else str(target)
        relying_party.state, relying_party.state_changed_at = target, now
        relying_party.save(update_fields=["state", "state_changed_at"])
        RelyingPartyEvent.objects.create(relying_party=relying_party, at=now, action=recorded, by=by, reason=reason)
        audit.record(f"rp.{recorded}", outcome="ok", client_id=relying_party.client_id, by=by, reason=reason)
    return relying_party


# --- Login decisions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginDecision:
    needs_login: bool
    required_level: int
    just_consented: bool = False


def required_level(relying_party: RelyingParty, named_levels: list[int]) -> int:
    """The level the login must reach: the party's registered minimum, raised (never lowered) by
    the lowest of the levels the request names (a request may name none)."""
    return max([relying_party.min_level, *sorted(named_levels)[:1]])


def login_decision(relying_party: RelyingParty, who, *, required: int, fresh_login: bool = False,
                   max_age: int | None = None, pending: dict | None, request_key: str) -> LoginDecision:
    """Whether the citizen must (re)authenticate for this request, and at which level at least.

    ``who`` is the session's :class:`chave.login.services.SignedIn` (or None); ``required`` the
    level the request needs (:func:`required_level`); ``pending`` the request this browser was last
    sent away for (to sign in or to consent: ``client_id``, ``query``, ``requested_at``,
    ``consented``), ``request_key`` what identifies the current request (the OIDC query string,
    the SAML request's ID).

    A session below ``required`` must sign in again. ``fresh_login`` (OIDC ``prompt=login``, SAML
    ``ForceAuthn``) and ``max_age`` ask for a fresh login: only one completed after *this very
    request* (same key as the pending one) sent the citizen to sign in satisfies them, so a
    returning browser does not loop, and an older login never passes for a fresh one.
    ``just_consented`` says the citizen has just answered the consent page for this very request.
    """
    same_request = bool(pending) and pending.get("client_id") == relying_party.client_id \
        and pending.get("query") == request_key
    just_consented = same_request and bool(pending.get("consented"))
    if who is None or who.assurance_level < required:
        return LoginDecision(True, required)
    auth_time = dt.datetime.fromisoformat(who.auth_time)
    fresh_after_request = (same_request and bool(pending.get("requested_at"))
                           and auth_time >= dt.datetime.fromisoformat(pending["requested_at"]))
    if fresh_login and not fresh_after_request:
        return LoginDecision(True, required)
    if max_age is not None and clock.now() - auth_time > dt.timedelta(seconds=max_age) and not fresh_after_request:
        return LoginDecision(True, required)
    return LoginDecision(False, required, just_consented)


# --- Consent ---------------------------------------------------------------------------------


@dataclass
class ConsentState:
    undecided: list[str] = field(default_factory=list)
    granted: list[str] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)


def consent_state(citizen, relying_party: RelyingParty, requested: list[str]) -> ConsentState:
    """Split the ``requested`` attributes by what the citizen decided for this portal before:
    ``granted`` (shared), ``withheld`` (refused, and optional), ``undecided`` (never asked, or
    a mandatory one refused earlier): the consent page asks only about the undecided ones."""
    row = _CONSENT.first(citizen.pk, relying_party.pk)
    granted = set(row.granted) if row else set()
    refused = set(row.refused) if row else set()
    state = ConsentState()
    for name in requested:
        if name in granted:
            state.granted.append(name)
        elif name in refused and name not in relying_party.mandatory_attributes:
            state.withheld.append(name)
        else:
            state.undecided.append(name)
    return state


def record_consent(citizen, relying_party: RelyingParty, *, granted: list[str], refused: list[str],
                   remember: bool = True, protocol: str = "oidc") -> None:
    """Remember what the citizen shared with (and refused to) the portal, merged with what they
    decided before (a later answer wins). ``remember=False`` only audits (the citizen chose not
    to sign in: they will be asked again)."""
    audit.record(f"{protocol}.consent", outcome="granted" if remember else "refused", citizen=citizen,
                 client_id=relying_party.client_id, granted=granted, refused=refused)
    if not remember:
        return
    with transaction.atomic():
        row, _ = Consent.objects.select_for_update().get_or_create(
            citizen=citizen, relying_party=relying_party, defaults={"updated_at": clock.now()}
        )
        row.granted = sorted((set(row.granted) - set(refused)) | set(granted))
        row.refused = sorted((set(row.refused) - set(granted)) | set(refused))
        row.updated_at = clock.now()
        row.save()


def revoke_consent(citizen, relying_party: RelyingParty) -> int:
    """Forget what the citizen agreed to share with the portal (it asks again at the next login)
    and have each protocol revoke what it issued to the portal for the citizen (receivers of
    :data:`chave.federation.signals.consent_revoked` return how many tokens they revoked); returns
    how many."""
    with transaction.atomic():
        Consent.objects.filter(citizen=citizen, relying_party=relying_party).delete()
        answers = consent_revoked.send(sender=RelyingParty, citizen=citizen, relying_party=relying_party)
        revoked = sum(answer for _, answer in answers if isinstance(answer, int))
        audit.record("oidc.consent", outcome="revoked", citizen=citizen, client_id=relying_party.client_id,
                     revoked=revoked)
    return revoked


def consents_of(citizen):
    """The portals the citizen has consented to, with what is shared (for the personal area)."""
    return Consent.objects.filter(citizen=citizen).select_related("relying_party").order_by("relying_party__name")


# --- Single sign-on ------------------------------------------------------------------------------


def sso_session(request, key, who) -> SsoSession:
    """The SSO session of this browser: made at the first portal a sign-in serves.

    A new sign-in of the same key in the same browser (a higher level, ``prompt=login``,
    ``max_age``) keeps the session (its ``sid`` and the portals it served, for logout) and
    records the new authentication; another key, or an ended session, starts a new one.
    """
    stored = request.session.get(SESSION_SSO) or {}
    row = None
    if stored.get("sid"):
        row = _OPEN_SSO.first(str(stored["sid"]), key.pk)
    auth_time = dt.datetime.fromisoformat(who.auth_time)
    now = clock.now()
    if row is None:
        row = _NEW_SSO.create(
            sid=secrets.token_urlsafe(24), key=key, auth_time=auth_time,
            assurance_level=who.assurance_level, method=who.method, created_at=now, last_used_at=now,
        )
        row.made_now = True
    elif stored.get("auth_time") != who.auth_time:
        SsoSession.objects.filter(pk=row.pk).update(auth_time=auth_time, assurance_level=who.assurance_level,
                                                   method=who.method, last_used_at=now)
        row.auth_time, row.assurance_level, row.method = auth_time, who.assurance_level, who.method
    else:
        SsoSession.objects.filter(pk=row.pk).update(last_used_at=now)
    request.session[SESSION_SSO] = {"sid": row.sid, "auth_time": who.auth_time}
    return row


_SERVED = Inserter(SsoSession.relying_parties.through)


def served(sso: SsoSession, party: RelyingParty) -> None:
    """Remember that ``sso`` signed the citizen in to ``party`` (its logout will reach it)."""
    if getattr(sso, "made_now", False):  # made by this request: the portal cannot be on it yet
        _SERVED.create(ssosession=sso, relyingparty=party)
    else:
        sso.relying_parties.add(party)


def record_authorization(relying_party: RelyingParty, key, who, request, *, protocol: str = "oidc") -> None:
    from chave.login.services import client_ip

    audit.record(f"{protocol}.authorize", outcome="ok", citizen=key.citizen, channel=who.method,
                 ip=client_ip(request), client_id=relying_party.client_id, portal=relying_party.name,
                 level=who.assurance_level)
