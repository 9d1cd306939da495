"""``chave rp``: registering, deciding, showing, listing, rotating a secret, replacing keys.

Most cases run the command in-process (``call_command``); a few run the real ``chave`` console
script in a subprocess, to see the exit status and that no traceback reaches the operator.
"""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation
from joserfc.jwk import RSAKey

from chave.audit.models import AuditEvent
from chave.federation.models import RelyingParty, RelyingPartyEvent, token_hash
from chave.identity.tests.test_cli import chave_environment, run_chave
from chave.oidc.management.commands import rp as rp_command

from .portal import Portal
from .test_registry import authenticates, public_jwks

pytestmark = pytest.mark.django_db

REGISTRY_FIELDS = {
    "client_id", "name", "entity_nif", "contact_email", "state", "redirect_uris", "post_logout_redirect_uris",
    "backchannel_logout_uri", "allowed_attributes", "mandatory_attributes", "min_level", "min_acr", "auth_method",
    "jwks_uri", "jwks", "sector_identifier", "subject_type", "id_token_alg", "created_at", "state_changed_at",
    "profile", "offline_access", "always_refresh", "resource_server", "require_pushed_authorization_requests",
    "require_dpop", "sector_identifier_uri", "frontchannel_logout_uri",
}
BASE = ["--name", "Portal da Habitação", "--nif", "600084779", "--contact-email", "ti@habitacao.gov.pt",
        "--redirect-uri", "https://portal.example.gov.pt/callback"]
JWKS_URI = ["--jwks-uri", "https://portal.example.gov.pt/jwks"]


def rp(*args: str) -> str:
    out = io.StringIO()
    with translation.override("en"):
        call_command("rp", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def rp_json(*args: str):
    return json.loads(rp(*args, "--json"))


def refused(*args: str) -> str:
    with translation.override("en"), pytest.raises(CommandError) as caught:
        call_command("rp", *args, stdout=io.StringIO(), stderr=io.StringIO())
    return str(caught.value)


def written() -> tuple[int, int, int]:
    return RelyingParty.objects.count(), RelyingPartyEvent.objects.count(), AuditEvent.objects.count()


def jwks_file(tmp_path, data, name="jwks.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


# --- add -------------------------------------------------------------------------------------------


def test_add_prints_the_client_id_of_a_request():
    text = rp("add", *BASE, *JWKS_URI, "--attributes", "NIC, NomeCompleto", "--mandatory", "NIC", "--min-level", "3")
    party = RelyingParty.objects.get()
    assert f"client_id: {party.client_id}" in text
    assert "requested" in text and f"chave rp approve {party.client_id}" in text
    assert "secret" not in text
    assert (party.state, party.min_level, party.allowed_attributes, party.mandatory_attributes) == (
        "requested", 3, ["NIC", "NomeCompleto"], ["NIC"])
    assert party.jwks_uri == "https://portal.example.gov.pt/jwks" and party.contact_email == "ti@habitacao.gov.pt"
    event = party.events.get()
    assert event.action == "requested" and event.by.endswith("(CLI)")


def test_add_json_has_every_registry_field():
    data = rp_json(
        "add", *BASE, "--redirect-uri", "https://portal.example.gov.pt/other",
        "--post-logout-redirect-uri", "https://portal.example.gov.pt/bye",
        "--backchannel-logout-uri", "https://portal.example.gov.pt/logout",
        "--attributes", "http://interop.gov.pt/MDC/Cidadao/NIF,NomeCompleto", "--mandatory", "NomeCompleto",
        "--sector-identifier", "portal.example.gov.pt", "--subject-type", "pairwise", "--id-token-alg", "ES256",
        *JWKS_URI,
    )
    party = RelyingParty.objects.get()
    assert set(data) == REGISTRY_FIELDS
    assert data | {"created_at": None, "state_changed_at": None} == {
        "client_id": party.client_id, "name": "Portal da Habitação", "entity_nif": "600084779",
        "contact_email": "ti@habitacao.gov.pt", "state": "requested",
        "redirect_uris": ["https://portal.example.gov.pt/callback", "https://portal.example.gov.pt/other"],
        "post_logout_redirect_uris": ["https://portal.example.gov.pt/bye"],
        "backchannel_logout_uri": "https://portal.example.gov.pt/logout",
        "allowed_attributes": ["NIF", "NomeCompleto"], "mandatory_attributes": ["NomeCompleto"],
        "min_level": 2, "min_acr": "urn:chave:loa:2", "auth_method": "private_key_jwt",
        "jwks_uri": "https://portal.example.gov.pt/jwks", "jwks": None, "sector_identifier": "portal.example.gov.pt",
        "subject_type": "pairwise", "id_token_alg": "ES256", "created_at": None, "state_changed_at": None,
        "profile": "oidc", "offline_access": False, "always_refresh": False, "resource_server": False,
        "require_pushed_authorization_requests": False, "require_dpop": False,
        "sector_identifier_uri": None, "frontchannel_logout_uri": None,
    }
    assert data["created_at"] == party.created_at.isoformat()


def test_add_with_a_secret_prints_it_once_and_approve_lets_the_portal_in(client):
    data = rp_json("add", *BASE, "--auth", "client_secret_basic", "--approve", "--reason", "signed protocol 12/2026")
    assert set(data) == REGISTRY_FIELDS | {"client_secret"}
    party = RelyingParty.objects.get()
    assert data["state"] == "approved" and data["jwks"] is None and data["jwks_uri"] is None
    assert party.client_secret_hash == token_hash(data["client_secret"])
    assert [(e.action, e.reason) for e in party.events.order_by("at", "id")] == [
        ("requested", ""), ("approved", "signed protocol 12/2026")]
    assert authenticates(client, party.client_id, secret=data["client_secret"])
    # Never again: show and list do not print it.
    assert data["client_secret"] not in rp("show", party.client_id) + rp("show", party.client_id, "--json")
    assert data["client_secret"] not in rp("list") + rp("list", "--json")


def test_add_text_output_with_a_secret():
    text = rp("add", *BASE, "--auth", "client_secret_basic")
    party = RelyingParty.objects.get()
    secret = text.split("client_secret: ")[1].split()[0]
    assert party.client_secret_hash == token_hash(secret)
    assert "shown only this once" in text


def test_add_reads_keys_from_a_file(tmp_path, client):
    key = RSAKey.generate_key(2048, private=True)
    data = rp_json("add", *BASE, "--jwks-file", jwks_file(tmp_path, public_jwks(key)), "--approve")
    assert data["jwks"] == public_jwks(key) and data["jwks_uri"] is None
    assert authenticates(client, data["client_id"], portal=Portal(data["client_id"], key))
    # A single JWK is taken as a key set of one.
    single = rp_json("add", *BASE, "--jwks-file", jwks_file(tmp_path, key.as_dict(private=False), "one.json"))
    assert single["jwks"] == {"keys": [key.as_dict(private=False)]}


@pytest.mark.parametrize(("args", "expected"), [
    (["--nif", "123456788"], "--nif: This tax number (NIF) is not valid"),
    (["--contact-email", "ti@"], "--contact-email: This is not a valid e-mail address."),
    (["--name", "  "], "--name: Give the entity's name"),
    (["--redirect-uri", "http://portal.example.gov.pt/cb"], "--redirect-uri: Use an https:// address"),
    (["--redirect-uri", "https://portal.example.gov.pt/cb#x"], "--redirect-uri: An address with a #fragment"),
    (["--post-logout-redirect-uri", "javascript:alert(1)"], "--post-logout-redirect-uri: Use an https://"),
    (["--backchannel-logout-uri", "http://10.0.0.1/logout"], "--backchannel-logout-uri: Use an https://"),
    (["--attributes", "NIC,ShoeSize"], "--attributes: Unknown attributes: ShoeSize. Known: NIC, NomeProprio"),
    (["--attributes", "NIC", "--mandatory", "NIF"], "--mandatory: Mandatory attributes must also be allowed: NIF."),
    (["--min-level", "5"], "--min-level: The minimum level is 2, 3 or 4."),
    (["--min-level", "high"], "The minimum level is 2, 3 or 4."),
    (["--auth", "none"], "argument --auth: invalid choice"),
    (["--subject-type", "secret"], "argument --subject-type: invalid choice"),
    (["--id-token-alg", "HS256"], "argument --id-token-alg: invalid choice"),
    (["--sector-identifier", "https://x/"], "--sector-identifier: The sector identifier is a host name"),
    (["--redirect-uri", "https://elsewhere.gov.pt/cb"], "--sector-identifier: The redirect URIs are on several hosts"),
    (["--reason", "why"], "--reason goes with --approve"),
    (["--approve", "--reason", "x" * 501], "The reason is too long"),  # registered and approved, or neither
])
def test_add_refuses_a_bad_argument_and_writes_nothing(args, expected):
    before = written()
    message = refused("add", *BASE, *JWKS_URI, *args)
    assert expected in message
    assert written() == before


def test_add_reports_every_problem_at_once():
    message = refused("add", "--name", "X", "--nif", "1", "--contact-email", "x", "--redirect-uri", "ftp://x",
                      "--min-level", "9")
    lines = message.splitlines()
    assert lines[0] == "Nothing was changed:"
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "--nif", "--contact-email", "--redirect-uri", "--min-level", "--jwks-uri / --jwks-file"]


@pytest.mark.parametrize(("args", "expected"), [
    ([], "--jwks-uri / --jwks-file: private_key_jwt needs either a JWKS or a JWKS URI"),
    ([*JWKS_URI, "--jwks-file", "{jwks}"], "--jwks-uri / --jwks-file: private_key_jwt needs either"),
    (["--jwks-file", "{missing}"], "--jwks-file: cannot read"),
    (["--jwks-file", "{not_json}"], "--jwks-file: "),
    (["--jwks-file", "{private}"], "--jwks-uri / --jwks-file: The JWKS holds a private or secret key"),
    (["--auth", "client_secret_basic", *JWKS_URI], "A client_secret_basic portal has no keys"),
])
def test_add_refuses_bad_keys(tmp_path, args, expected):
    key = RSAKey.generate_key(2048, private=True)
    files = {"jwks": jwks_file(tmp_path, public_jwks(key)), "missing": str(tmp_path / "nope.json"),
             "not_json": jwks_file(tmp_path, "-----BEGIN PUBLIC KEY-----", "pem.json"),
             "private": jwks_file(tmp_path, {"keys": [key.as_dict(private=True)]}, "private.json")}
    before = written()
    message = refused("add", *BASE, *[a.format(**files) for a in args])
    assert expected in message
    assert written() == before


def test_add_requires_a_contact_email_and_says_so():
    assert "--contact-email" in refused("add", "--name", "X", "--nif", "600084779", "--redirect-uri",
                                        "https://x.gov.pt/cb")
    out = io.StringIO()
    parser = rp_command.Command().create_parser("chave", "rp")
    sub = next(a for a in parser._actions if a.dest == "action").choices["add"]
    sub.print_help(out)
    assert "--contact-email CONTACT_EMAIL" in out.getvalue() and "required" in out.getvalue()


# --- decisions ---------------------------------------------------------------------------------------


def added(*extra: str) -> str:
    return rp_json("add", *BASE, *JWKS_URI, *extra)["client_id"]


def test_approve_suspend_and_reinstate_with_their_history(clock):
    client_id = added()
    assert "is now approved" in rp("approve", client_id, "--reason", "protocol signed")
    data = rp_json("suspend", client_id, "--reason", "key leaked")
    assert data["state"] == "suspended" and data["events"][-1]["action"] == "suspended"
    data = rp_json("approve", client_id, "--reason", "keys replaced")
    assert data["state"] == "approved"
    assert [(e["action"], e["reason"]) for e in data["events"]] == [
        ("requested", ""), ("approved", "protocol signed"), ("suspended", "key leaked"), ("reinstated", "keys replaced")]
    assert all(e["by"].endswith("(CLI)") and e["at"] == clock.now().isoformat() for e in data["events"])
    assert set(data) == REGISTRY_FIELDS | {"events"}
    assert set(data["events"][0]) == {"at", "action", "by", "reason"}
    assert AuditEvent.objects.filter(event__in=["rp.approved", "rp.suspended", "rp.reinstated"],
                                     detail__client_id=client_id).count() == 3


@pytest.mark.parametrize(("setup", "args", "expected"), [
    ([], ["suspend", "{id}", "--reason", "x"], "still awaiting approval"),
    (["approve"], ["approve", "{id}", "--reason", "x"], "already approved"),
    (["approve", "suspend"], ["suspend", "{id}", "--reason", "x"], "already suspended"),
    ([], ["approve", "chave-nope", "--reason", "x"], "No relying party has the client_id chave-nope"),
    ([], ["approve", "{id}"], "--reason"),
    ([], ["approve", "{id}", "--reason", "x" * 501], "The reason is too long (at most 500 characters)."),
])
def test_illegal_decisions_are_refused_and_change_nothing(setup, args, expected):
    client_id = added()
    for action in setup:
        rp(action, client_id, "--reason", "setup")
    state = RelyingParty.objects.get().state
    before = written()
    assert expected in refused(*[a.format(id=client_id) for a in args])
    assert written() == before and RelyingParty.objects.get().state == state


# --- show and list --------------------------------------------------------------------------------------


def test_show_prints_the_registration_and_the_history():
    client_id = added("--attributes", "NIC,NomeCompleto", "--mandatory", "NIC")
    rp("approve", client_id, "--reason", "protocol signed")
    text = rp("show", client_id)
    assert text.startswith(f"Portal da Habitação ({client_id})")
    for expected in ["approved", "600084779", "ti@habitacao.gov.pt", "https://portal.example.gov.pt/callback",
                     "NIC*, NomeCompleto", "urn:chave:loa:2", "private_key_jwt", "https://portal.example.gov.pt/jwks",
                     "pairwise (sector portal.example.gov.pt)", "History:", "requested  by ",
                     "approved  by ", "— protocol signed"]:
        assert expected in text, expected
    assert "No relying party has the client_id chave-0" in refused("show", "chave-0")


def test_list_shows_every_portal_newest_first_and_filters_by_state(clock):
    assert "No relying parties yet" in rp("list")
    assert rp_json("list") == []
    first = added()
    clock.travel(dt.timedelta(seconds=1))
    second = added()
    rp("approve", second, "--reason", "ok")
    text = rp("list")
    assert text.index(second) < text.index(first)
    assert [p["client_id"] for p in rp_json("list")] == [second, first]
    assert all(set(p) == REGISTRY_FIELDS for p in rp_json("list"))
    assert [p["client_id"] for p in rp_json("list", "--state", "approved")] == [second]
    assert [p["client_id"] for p in rp_json("list", "--state", "requested")] == [first]
    assert "invalid choice" in refused("list", "--state", "deleted")


# --- credentials -----------------------------------------------------------------------------------------


def test_rotate_secret_prints_a_new_secret_and_the_old_one_stops_working(client):
    data = rp_json("add", *BASE, "--auth", "client_secret_basic", "--approve")
    client_id, old = data["client_id"], data["client_secret"]
    text = rp("rotate-secret", client_id, "--reason", "leaked")
    new = text.split("client_secret: ")[1].split()[0]
    assert new != old and "the old one no longer works" in text
    assert not authenticates(client, client_id, secret=old)
    assert authenticates(client, client_id, secret=new)
    newer = rp_json("rotate-secret", client_id)
    assert set(newer) == REGISTRY_FIELDS | {"client_secret"}
    assert not authenticates(client, client_id, secret=new)
    assert authenticates(client, client_id, secret=newer["client_secret"])
    actions = [e["action"] for e in rp_json("show", client_id)["events"]]
    assert actions == ["requested", "approved", "secret_rotated", "secret_rotated"]


def test_rotate_secret_is_refused_for_a_portal_with_keys():
    client_id = added()
    before = written()
    assert "has no secret to rotate" in refused("rotate-secret", client_id)
    assert "No relying party" in refused("rotate-secret", "chave-0")
    assert written() == before


def test_set_jwks_replaces_the_keys_a_portal_signs_with(tmp_path, client):
    old_key, new_key = RSAKey.generate_key(2048, private=True), RSAKey.generate_key(2048, private=True)
    client_id = rp_json("add", *BASE, "--jwks-file", jwks_file(tmp_path, public_jwks(old_key)), "--approve")["client_id"]
    assert authenticates(client, client_id, portal=Portal(client_id, old_key))
    text = rp("set-jwks", client_id, "--jwks-file", jwks_file(tmp_path, public_jwks(new_key), "new.json"),
              "--reason", "yearly rotation")
    assert "replaced" in text
    assert not authenticates(client, client_id, portal=Portal(client_id, old_key))
    assert authenticates(client, client_id, portal=Portal(client_id, new_key))
    data = rp_json("set-jwks", client_id, "--jwks-uri", "https://portal.example.gov.pt/jwks2")
    assert (data["jwks"], data["jwks_uri"]) == (None, "https://portal.example.gov.pt/jwks2")
    assert [e["action"] for e in rp_json("show", client_id)["events"]][-2:] == ["keys_changed", "keys_changed"]


@pytest.mark.parametrize(("args", "expected"), [
    ([], "one of the arguments --jwks-uri --jwks-file is required"),
    (["--jwks-uri", "https://a.gov.pt/j", "--jwks-file", "x"], "not allowed with argument"),
    (["--jwks-uri", "http://a.gov.pt/j"], "--jwks-uri: Use an https:// address"),
    (["--jwks-file", "{private}"], "The JWKS holds a private or secret key"),
])
def test_set_jwks_refuses_bad_keys(tmp_path, args, expected):
    client_id = added()
    private = jwks_file(tmp_path, {"keys": [RSAKey.generate_key(2048, private=True).as_dict(private=True)]})
    before = written()
    assert expected in refused("set-jwks", client_id, *[a.format(private=private) for a in args])
    assert written() == before


def test_set_jwks_is_refused_for_a_portal_with_a_secret():
    client_id = rp_json("add", *BASE, "--auth", "client_secret_basic")["client_id"]
    assert "has no keys to change" in refused("set-jwks", client_id, *JWKS_URI)


# --- the real console command ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    with chave_environment(tmp_path_factory.mktemp("rp-cli")) as env:
        done = run_chave(env, "migrate", "--noinput", "-v0")
        assert done.returncode == 0, done.stderr
        yield env


@pytest.mark.django_db(transaction=False)
def test_the_console_command_exits_non_zero_without_a_traceback(migrated):
    env = migrated
    done = run_chave(env, "rp", "add", "--name", "X", "--nif", "1", "--contact-email", "x@gov.pt",
                     "--redirect-uri", "https://x.gov.pt/cb", *JWKS_URI)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "--nif:" in done.stderr
    done = run_chave(env, "rp", "show", "chave-0")
    assert done.returncode != 0 and "Traceback" not in done.stderr and "chave-0" in done.stderr
    done = run_chave(env, "rp", "add", "--name", "X", "--nif", "600084779", "--redirect-uri", "https://x.gov.pt/cb")
    assert done.returncode != 0 and "Traceback" not in done.stderr and "--contact-email" in done.stderr

    done = run_chave(env, "rp", "add", "--name", "X", "--nif", "600084779", "--contact-email", "x@gov.pt",
                     "--redirect-uri", "https://x.gov.pt/cb", "--auth", "client_secret_basic", "--approve", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["state"] == "approved" and data["client_secret"]
    keys = run_chave(env, "oidc_keys", "rotate", "--json")
    assert keys.returncode == 0 and [k["alg"] for k in json.loads(keys.stdout)] == ["RS256", "ES256"]


def test_settings_change_a_portals_oidc_settings_with_history():
    from chave.oidc.models import client_settings

    client_id = rp_json("add", *BASE, *JWKS_URI, "--id-token-alg", "ES256")["client_id"]
    data = rp_json("settings", client_id, "--offline-access", "yes", "--require-dpop", "yes", "--profile", "fapi2",
                   "--reason", "asked for refresh tokens")
    assert (data["offline_access"], data["require_dpop"], data["profile"]) == (True, True, "fapi2")
    assert data["require_pushed_authorization_requests"] is True  # FAPI 2.0 brings it
    party = RelyingParty.objects.get(client_id=client_id)
    assert client_settings(party).offline_access is True
    event = party.events.get(action="settings_changed")
    assert "offline_access=True" in event.reason and "asked for refresh tokens" in event.reason
    assert AuditEvent.objects.filter(event="rp.settings_changed", detail__client_id=client_id).exists()


def test_settings_refuse_fapi2_for_a_portal_that_cannot_meet_it():
    client_id = rp_json("add", *BASE, *JWKS_URI)["client_id"]  # RS256 ID tokens
    with pytest.raises(CommandError, match="FAPI 2.0"):  # the same words in both languages
        call_command("rp", "settings", client_id, "--profile", "fapi2", stdout=io.StringIO())
