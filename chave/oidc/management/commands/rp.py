"""``chave rp``: the registry of relying parties (the portals that log citizens in with the key).

- ``add`` records a portal's request (state ``requested``; ``--approve`` approves it at once) and
  prints its ``client_id`` — and, for ``client_secret_basic``, its secret, this once only.
- ``approve`` / ``suspend`` move a party between ``requested → approved → suspended`` (approving a
  suspended party reinstates it); each decision is kept with who made it and why.
- ``show`` (with the decision history) and ``list``; ``--json`` prints the same as JSON.
- ``rotate-secret`` gives a ``client_secret_basic`` party a new secret (the old one stops working);
  ``set-jwks`` replaces a ``private_key_jwt`` party's public keys; ``settings`` changes its OpenID
  Connect settings (profile, offline access, resource server, PAR and DPoP required, front-channel
  logout URI).

Every write goes through :mod:`chave.oidc.services`. Bad arguments are reported together, one line
each naming the option, and the command exits non-zero without a traceback and without writing.
"""

from __future__ import annotations

import argparse
import getpass
import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import DatabaseError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from chave.commands import ChaveCommand
from chave.federation import services as federation
from chave.federation.models import RelyingParty
from chave.federation.attributes import ATTRIBUTES, PREFIX
from chave.federation.levels import LEVEL_URIS
from chave.oidc import services

# Which option a field of the registry comes from, so the operator knows what to fix.
_FLAGS = {
    "name": "--name",
    "entity_nif": "--nif",
    "contact_email": "--contact-email",
    "redirect_uris": "--redirect-uri",
    "post_logout_redirect_uris": "--post-logout-redirect-uri",
    "backchannel_logout_uri": "--backchannel-logout-uri",
    "allowed_attributes": "--attributes",
    "mandatory_attributes": "--mandatory",
    "min_level": "--min-level",
    "auth_method": "--auth",
    "jwks": "--jwks-uri / --jwks-file",
    "jwks_uri": "--jwks-uri",
    "sector_identifier": "--sector-identifier",
    "subject_type": "--subject-type",
    "id_token_alg": "--id-token-alg",
    "profile": "--profile",
    "sector_identifier_uri": "--sector-identifier-uri",
    "frontchannel_logout_uri": "--frontchannel-logout-uri",
    "saml_metadata": "--saml-metadata",
}
JWKS_FILE_MAX = 256 * 1024


def cli_operator() -> str:
    """Who runs the command, for the history and the audit log."""
    try:
        return f"{getpass.getuser()} (CLI)"
    except (KeyError, OSError):  # no user name for this uid (some containers)
        return "operator (CLI)"


def _level(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(_("The minimum level is 2, 3 or 4."))
    return int(text)


def _names(text: str) -> list[str]:
    """A comma-separated list of attribute names; the full autenticacao.gov URIs are accepted too."""
    return [n.strip().removeprefix(PREFIX) for n in text.split(",") if n.strip()]


def _messages(exc: ValidationError) -> list[str]:
    """One line per problem, each naming the option it is about."""
    if not hasattr(exc, "error_dict"):
        return [" ".join(str(m) for m in exc.messages)]
    lines = []
    for field_name, errors in exc.error_dict.items():
        flag = _FLAGS.get(field_name, field_name)
        lines += [f"{flag}: {message}" for error in errors for message in error.messages]
    return lines


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _local(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")


def oidc_settings(party: RelyingParty) -> dict:
    from chave.oidc.models import client_settings

    row = client_settings(party)
    return {"profile": row.profile, "offline_access": row.offline_access,
            "always_refresh": row.offline_access and row.always_refresh, "resource_server": row.resource_server,
            "require_pushed_authorization_requests": row.par_required, "require_dpop": row.dpop_required,
            "sector_identifier_uri": row.sector_identifier_uri or None,
            "frontchannel_logout_uri": row.frontchannel_logout_uri or None}


def saml_settings(party: RelyingParty) -> dict:
    """A SAML service provider's registration (entity ID, ACS and SLO addresses, certificates'
    fingerprints); nothing for an OpenID Connect portal."""
    from chave.saml.models import ServiceProvider

    sp = ServiceProvider.objects.filter(relying_party=party).first()
    if sp is None:
        return {}
    return {"protocol": "saml", "saml": {"entity_id": sp.entity_id, "acs": sp.acs_urls,
                                         "slo": [e["url"] for e in sp.slo], "metadata_url": sp.metadata_url or None,
                                         "certificates": len(sp.certificates)}}


def describe(party: RelyingParty, *, history: bool = False) -> dict:
    """What an operator sees of a party: everything registered, never a secret (nor its hash)."""
    result = {
        "client_id": party.client_id,
        "name": party.name,
        "entity_nif": party.entity_nif,
        "contact_email": party.contact_email,
        "state": party.state,
        "redirect_uris": list(party.redirect_uris),
        "post_logout_redirect_uris": list(party.post_logout_redirect_uris),
        "backchannel_logout_uri": party.backchannel_logout_uri or None,
        "allowed_attributes": list(party.allowed_attributes),
        "mandatory_attributes": list(party.mandatory_attributes),
        "min_level": party.min_level,
        "min_acr": LEVEL_URIS.get(party.min_level),
        "auth_method": party.auth_method,
        "jwks_uri": party.jwks_uri or None,
        "jwks": party.jwks or None,
        "sector_identifier": party.sector_identifier or None,
        "subject_type": party.subject_type,
        "id_token_alg": party.id_token_alg,
        **oidc_settings(party),
        **saml_settings(party),
        "created_at": _iso(party.created_at),
        "state_changed_at": _iso(party.state_changed_at),
    }
    if history:
        result["events"] = [
            {"at": _iso(e.at), "action": e.action, "by": e.by, "reason": e.reason}
            for e in party.events.order_by("at", "id")
        ]
    return result


class Command(ChaveCommand):
    help = (
        "The registry of relying parties (portals): add, approve, suspend, show, list, rotate-secret, set-jwks, "
        "settings. "
        "Example: chave rp add --name \"Portal X\" --nif 600084779 --contact-email dev@x.gov.pt "
        "--redirect-uri https://x.gov.pt/callback --auth private_key_jwt --jwks-uri https://x.gov.pt/jwks"
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True,
                                    metavar="{add,approve,suspend,show,list,rotate-secret,set-jwks,settings}")

        add = sub.add_parser(
            "add", help="Record a portal's request to integrate and print its client_id.",
            description=(
                "Record a relying party (state requested; --approve approves it at once) and print its client_id. "
                "Required: --name, --nif, --contact-email and at least one --redirect-uri (OpenID Connect) or "
                "--saml-metadata (SAML 2.0). Client authentication "
                "is private_key_jwt (the default; give --jwks-uri or --jwks-file) or client_secret_basic (a secret "
                "is printed this once; only its hash is kept)."
            ),
        )
        add.add_argument("--name", required=True, help="name of the public entity and its portal")
        add.add_argument("--nif", required=True, help="the entity's tax number (NIF), 9 digits")
        add.add_argument("--contact-email", required=True,
                         help="required: where the provider reaches the portal's technical team")
        add.add_argument("--redirect-uri", action="append", default=[], metavar="URL",
                         help="OpenID Connect: an exact redirect URI (https://; http:// only for localhost); repeat "
                              "for more")
        add.add_argument("--saml-metadata", metavar="FILE|URL",
                         help="a SAML 2.0 service provider instead of an OpenID Connect client: its metadata "
                              "(entityID, assertion consumer services, logout service, signing certificate)")
        add.add_argument("--post-logout-redirect-uri", action="append", default=[], metavar="URL",
                         help="where the browser may return after logout; repeat for more")
        add.add_argument("--backchannel-logout-uri", default="", metavar="URL",
                         help="where logout tokens are sent when a citizen's session ends")
        add.add_argument("--attributes", type=_names, default=[], metavar="A,B,…",
                         help="attributes the portal may ask for: " + ", ".join(ATTRIBUTES))
        add.add_argument("--mandatory", type=_names, default=[], metavar="A,B,…",
                         help="those of --attributes the citizen cannot refuse")
        add.add_argument("--min-level", type=_level, default=None, metavar="N",
                         help="minimum assurance level, 2, 3 or 4 (default: the policy's rp_default_min_level)")
        add.add_argument("--auth", choices=RelyingParty.AuthMethod.values, default="private_key_jwt",
                         help="client authentication at the token endpoint (default: private_key_jwt)")
        add.add_argument("--jwks-uri", default="", metavar="URL", help="private_key_jwt: where the portal publishes "
                                                                       "its public keys")
        add.add_argument("--jwks-file", metavar="PATH", help="private_key_jwt: a file with the portal's public keys "
                                                             "(a JWKS, or one JWK)")
        add.add_argument("--sector-identifier", default="", metavar="HOST",
                         help="host whose portals share pairwise subjects (default: the redirect URIs' host)")
        add.add_argument("--subject-type", choices=["pairwise", "public"], default="pairwise",
                         help="pairwise (default: portals of different sectors cannot correlate citizens) or public")
        add.add_argument("--id-token-alg", choices=["RS256", "ES256"], default="RS256",
                         help="ID token signature algorithm (default: RS256)")
        add.add_argument("--sector-identifier-uri", default="", metavar="URL",
                         help="pairwise subjects shared by several hosts: a JSON list of every redirect URI, "
                              "fetched and checked at approval; its host is the sector")
        add.add_argument("--frontchannel-logout-uri", default="", metavar="URL",
                         help="loaded in a frame of Chave's signed-out page (Front-Channel Logout 1.0)")
        add.add_argument("--offline-access", action="store_true",
                         help="give refresh tokens when the portal asks for the offline_access scope")
        add.add_argument("--resource-server", action="store_true",
                         help="the portal is a resource server: it may introspect access tokens (RFC 7662)")
        add.add_argument("--profile", choices=["oidc", "fapi2"], default="oidc",
                         help="oidc (default), or fapi2: the FAPI 2.0 Security Profile (pushed requests, PKCE S256, "
                              "private_key_jwt with PS256/ES256, DPoP, ES256 ID tokens, codes of at most 60 s)")
        add.add_argument("--require-par", action="store_true",
                         help="the portal must push its authorization requests (RFC 9126)")
        add.add_argument("--require-dpop", action="store_true",
                         help="the portal's tokens must be bound to its key with DPoP (RFC 9449)")
        add.add_argument("--approve", action="store_true", help="approve the portal at once")
        add.add_argument("--reason", default="", help="with --approve: why (kept in the history)")
        add.add_argument("--json", action="store_true", help="print one JSON object (with client_secret when one)")

        for action, text in (("approve", "Approve a requested portal, or reinstate a suspended one."),
                             ("suspend", "Suspend an approved portal: new logins and token refresh stop at once.")):
            command = sub.add_parser(action, help=text, description=text)
            command.add_argument("client_id", metavar="CLIENT_ID")
            command.add_argument("--reason", required=True, help="why (kept in the portal's history)")
            command.add_argument("--json", action="store_true", help="print one JSON object")

        show = sub.add_parser("show", help="Show a portal's registration and its decision history.")
        show.add_argument("client_id", metavar="CLIENT_ID")
        show.add_argument("--json", action="store_true", help="print one JSON object")

        listing = sub.add_parser("list", help="List the portals, newest first.")
        listing.add_argument("--state", choices=RelyingParty.State.values, help="only portals in this state")
        listing.add_argument("--json", action="store_true", help="print a JSON array")

        rotate = sub.add_parser(
            "rotate-secret", help="Give a client_secret_basic portal a new secret; the old one stops working.",
            description="The new secret is printed this once; only its hash is kept.",
        )
        rotate.add_argument("client_id", metavar="CLIENT_ID")
        rotate.add_argument("--reason", default="", help="why (kept in the portal's history)")
        rotate.add_argument("--json", action="store_true", help="print one JSON object (with client_secret)")

        keys = sub.add_parser(
            "set-jwks", help="Replace a private_key_jwt portal's public keys (when it rotates them).",
            description="Client assertions signed with keys no longer registered are refused from then on.",
        )
        keys.add_argument("client_id", metavar="CLIENT_ID")
        source = keys.add_mutually_exclusive_group(required=True)
        source.add_argument("--jwks-uri", metavar="URL", help="where the portal publishes its public keys")
        source.add_argument("--jwks-file", metavar="PATH", help="a file with the portal's public keys")
        keys.add_argument("--reason", default="", help="why (kept in the portal's history)")

        oidc = sub.add_parser(
            "settings", help="Change a portal's OpenID Connect settings (only those given change).",
            description="Takes effect at the portal's next request. Each change is kept in the portal's history.",
        )
        oidc.add_argument("client_id", metavar="CLIENT_ID")
        yes_no = {"choices": ["yes", "no"], "metavar": "yes|no"}
        oidc.add_argument("--profile", choices=["oidc", "fapi2"], help="oidc, or fapi2 (FAPI 2.0 Security Profile)")
        oidc.add_argument("--offline-access", **yes_no, help="refresh tokens for the offline_access scope")
        oidc.add_argument("--always-refresh", **yes_no,
                          help="with offline access: a refresh token with every sign-in, asked for or not")
        oidc.add_argument("--resource-server", **yes_no, help="may introspect access tokens")
        oidc.add_argument("--require-par", **yes_no, help="must push its authorization requests")
        oidc.add_argument("--require-dpop", **yes_no, help="must bind its tokens with DPoP")
        oidc.add_argument("--frontchannel-logout-uri", metavar="URL", help="empty to remove")
        oidc.add_argument("--sector-identifier-uri", metavar="URL",
                          help="on the portal's sector; read at once if it is approved (empty to remove)")
        oidc.add_argument("--reason", default="", help="why (kept in the portal's history)")
        oidc.add_argument("--json", action="store_true", help="print one JSON object")
        keys.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        action = options["action"].replace("-", "_")
        try:
            getattr(self, action)(options)
        except ValidationError as exc:
            raise CommandError("\n  ".join([_("Nothing was changed:"), *_messages(exc)]))
        except DatabaseError as exc:
            # Most often a database that was never migrated or is not running: say so, no traceback.
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CommandError(_("The database cannot be used (%(error)s). Is it running, and was `chave migrate` "
                                 "run?") % {"error": detail})

    # --- helpers --------------------------------------------------------------------------

    def party(self, client_id: str) -> RelyingParty:
        party = RelyingParty.objects.filter(client_id=client_id).first()
        if party is None:
            raise CommandError(_("No relying party has the client_id %(client_id)s. `chave rp list` shows them.")
                               % {"client_id": client_id})
        return party

    def read_jwks(self, path: str) -> dict:
        """The key set in a file: a JWKS, or a single JWK (wrapped into one)."""
        try:
            with Path(path).open("rb") as handle:
                raw = handle.read(JWKS_FILE_MAX + 1)
        except OSError as exc:
            raise CommandError(_("--jwks-file: cannot read %(path)s (%(error)s).")
                               % {"path": path, "error": exc.strerror or type(exc).__name__})
        if len(raw) > JWKS_FILE_MAX:
            raise CommandError(_("--jwks-file: %(path)s is too large for a key set.") % {"path": path})
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CommandError(_("--jwks-file: %(path)s is not JSON.") % {"path": path})
        if isinstance(data, dict) and "kty" in data and "keys" not in data:
            data = {"keys": [data]}
        return data

    def output(self, options, data: dict, lines: list[str]) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2))
        else:
            for line in lines:
                self.stdout.write(line)

    def secret_lines(self, secret: str) -> list[str]:
        return [
            f"  client_secret: {secret}",
            _("The secret is shown only this once: give it to the portal over a safe channel. Only its hash is "
              "kept; `chave rp rotate-secret` makes a new one."),
        ]

    # --- commands -------------------------------------------------------------------------

    def add(self, options) -> None:
        if options["reason"] and not options["approve"]:
            raise CommandError(_("--reason goes with --approve: a request is recorded without one."))
        if options["saml_metadata"]:
            return self.add_saml(options)
        if not options["redirect_uri"]:
            raise CommandError(_("Give at least one --redirect-uri (OpenID Connect) or --saml-metadata (SAML 2.0)."))
        jwks = self.read_jwks(options["jwks_file"]) if options["jwks_file"] is not None else None
        by = cli_operator()
        with transaction.atomic():  # registered and approved together, or not at all
            registration = services.register_relying_party(
                name=options["name"], entity_nif=options["nif"], contact_email=options["contact_email"],
                redirect_uris=options["redirect_uri"], post_logout_redirect_uris=options["post_logout_redirect_uri"],
                backchannel_logout_uri=options["backchannel_logout_uri"],
                allowed_attributes=options["attributes"], mandatory_attributes=options["mandatory"],
                min_level=options["min_level"], auth_method=options["auth"], jwks=jwks,
                jwks_uri=options["jwks_uri"], sector_identifier=options["sector_identifier"],
                subject_type=options["subject_type"], id_token_alg=options["id_token_alg"],
                offline_access=options["offline_access"], resource_server=options["resource_server"],
                profile=options["profile"], require_pushed_authorization_requests=options["require_par"],
                require_dpop=options["require_dpop"], sector_identifier_uri=options["sector_identifier_uri"],
                frontchannel_logout_uri=options["frontchannel_logout_uri"], by=by,
            )
            party = registration.relying_party
            if options["approve"]:
                party = federation.decide(party, "approve", by=by,
                                        reason=options["reason"] or _("approved when registered"))
        data = describe(party)
        lines = [
            _("Registered %(name)s (%(state)s).") % {"name": party.name, "state": party.get_state_display()},
            f"  client_id: {party.client_id}",
        ]
        if registration.client_secret:
            data["client_secret"] = registration.client_secret
            lines += self.secret_lines(registration.client_secret)
        if not party.is_approved:
            lines.append(_("It cannot log citizens in until approved: chave rp approve %(client_id)s --reason …")
                         % {"client_id": party.client_id})
        self.output(options, data, lines)

    def add_saml(self, options) -> None:
        from chave.saml import services as saml

        if options["redirect_uri"]:
            raise CommandError(_("--redirect-uri is for OpenID Connect portals: a SAML service provider's addresses "
                                 "come from its metadata."))
        metadata, url = saml.load_metadata(options["saml_metadata"])
        by = cli_operator()
        with transaction.atomic():
            sp = saml.register_service_provider(
                metadata=metadata, metadata_url=url, name=options["name"], entity_nif=options["nif"],
                contact_email=options["contact_email"], allowed_attributes=options["attributes"],
                mandatory_attributes=options["mandatory"], min_level=options["min_level"], by=by)
            party = sp.relying_party
            if options["approve"]:
                party = federation.decide(party, "approve", by=by,
                                          reason=options["reason"] or _("approved when registered"))
        data = describe(party)
        lines = [
            _("Registered %(name)s (%(state)s).") % {"name": party.name, "state": party.get_state_display()},
            f"  client_id: {party.client_id}",
            f"  entityID: {sp.entity_id}",
        ]
        if not party.is_approved:
            lines.append(_("It cannot log citizens in until approved: chave rp approve %(client_id)s --reason …")
                         % {"client_id": party.client_id})
        self.output(options, data, lines)

    def decide(self, options, action: str) -> None:
        party = federation.decide(self.party(options["client_id"]), action, by=cli_operator(), reason=options["reason"])
        self.output(options, describe(party, history=True), [
            _("%(name)s (%(client_id)s) is now %(state)s.")
            % {"name": party.name, "client_id": party.client_id, "state": party.get_state_display()},
        ])

    def approve(self, options) -> None:
        self.decide(options, "approve")

    def suspend(self, options) -> None:
        self.decide(options, "suspend")

    def show(self, options) -> None:
        party = self.party(options["client_id"])
        data = describe(party, history=True)
        none = "—"
        rows = [
            (_("State"), party.get_state_display()),
            (_("Entity NIF"), party.entity_nif),
            (_("Contact e-mail"), party.contact_email),
            (_("Redirect URIs"), " ".join(party.redirect_uris)),
            (_("Post-logout redirect URIs"), " ".join(party.post_logout_redirect_uris) or none),
            (_("Back-channel logout URI"), party.backchannel_logout_uri or none),
            (_("Attributes"), ", ".join(f"{a}*" if a in party.mandatory_attributes else a
                                        for a in party.allowed_attributes) or none),
            (_("Minimum level"), f"{party.min_level} ({data['min_acr']})"),
            (_("Client authentication"), party.auth_method),
            (_("Keys"), party.jwks_uri or (", ".join(str(k.get("kid") or "?") for k in party.jwks["keys"])
                                           if party.jwks else none)),
            (_("Subjects"), f"{party.subject_type} ({_('sector')} {party.sector})" if party.subject_type == "pairwise"
             else party.subject_type),
            (_("ID token algorithm"), party.id_token_alg),
            (_("Profile"), "FAPI 2.0" if data["profile"] == "fapi2" else "OpenID Connect"),
            (_("Refresh tokens (offline_access)"), (_("yes, with every sign-in") if data["always_refresh"] else _("yes"))
             if data["offline_access"] else _("no")),
            (_("Resource server (introspection)"), _("yes") if data["resource_server"] else _("no")),
            (_("Pushed requests required"), _("yes") if data["require_pushed_authorization_requests"] else _("no")),
            (_("DPoP required"), _("yes") if data["require_dpop"] else _("no")),
            (_("Registered"), _local(party.created_at)),
        ]
        width = max(len(label) for label, _value in rows)
        if data.get("saml"):
            rows[4:4] = [(_("SAML entity ID"), data["saml"]["entity_id"]),
                         (_("Assertion consumer services"), " ".join(data["saml"]["acs"])),
                         (_("SAML logout service"), " ".join(data["saml"]["slo"]) or none)]
            width = max(len(label) for label, _value in rows)
        lines = [f"{party.name} ({party.client_id})"]
        lines += [f"  {label + ':':<{width + 1}} {value}" for label, value in rows]
        if party.mandatory_attributes:
            lines.append("  " + _("* mandatory: the citizen cannot refuse it"))
        lines.append(_("History:"))
        for event in party.events.order_by("at", "id"):
            reason = f" — {event.reason}" if event.reason else ""
            lines.append(f"  {_local(event.at)}  {event.action}  {_('by')} {event.by}{reason}")
        self.output(options, data, lines)

    def list(self, options) -> None:
        parties = RelyingParty.objects.order_by("-created_at", "-id")
        if options["state"]:
            parties = parties.filter(state=options["state"])
        parties = list(parties)
        if options["json"]:
            self.stdout.write(json.dumps([describe(p) for p in parties], indent=2))
            return
        if not parties:
            self.stdout.write(_("No relying parties yet: `chave rp add` registers one."))
            return
        for p in parties:
            self.stdout.write(f"{p.client_id}  {p.state:<9}  L{p.min_level}  {p.auth_method:<19}  {p.name}")

    def rotate_secret(self, options) -> None:
        rotated = services.rotate_client_secret(self.party(options["client_id"]), by=cli_operator(),
                                                reason=options["reason"])
        party = rotated.relying_party
        data = {**describe(party), "client_secret": rotated.client_secret}
        lines = [_("New secret for %(name)s (%(client_id)s); the old one no longer works.")
                 % {"name": party.name, "client_id": party.client_id}]
        self.output(options, data, lines + self.secret_lines(rotated.client_secret))

    def settings(self, options) -> None:
        party = self.party(options["client_id"])
        flags = {"profile": "profile", "offline_access": "offline_access", "always_refresh": "always_refresh",
                 "resource_server": "resource_server",
                 "require_par": "require_pushed_authorization_requests", "require_dpop": "require_dpop",
                 "frontchannel_logout_uri": "frontchannel_logout_uri", "sector_identifier_uri": "sector_identifier_uri"}
        changes = {}
        for option, name in flags.items():
            value = options.get(option)
            if value is not None:
                changes[name] = (value == "yes") if value in ("yes", "no") else value
        if not changes:
            raise CommandError(_("Name at least one setting to change (see --help)."))
        services.set_client_settings(party, by=cli_operator(), reason=options["reason"], **changes)
        party = self.party(options["client_id"])
        self.output(options, describe(party), [
            _("Settings of %(name)s (%(client_id)s) changed.") % {"name": party.name, "client_id": party.client_id},
        ])

    def set_jwks(self, options) -> None:
        party = self.party(options["client_id"])
        jwks = self.read_jwks(options["jwks_file"]) if options["jwks_file"] is not None else None
        party = services.set_relying_party_keys(party, jwks=jwks, jwks_uri=options["jwks_uri"] or "",
                                                by=cli_operator(), reason=options["reason"])
        self.output(options, describe(party), [
            _("Keys of %(name)s (%(client_id)s) replaced.") % {"name": party.name, "client_id": party.client_id},
        ])

