"""Staff accounts, the two-factor sign-in, the idle timeout and the role boundaries."""

import datetime as dt
import json

import pyotp
import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from chave import policy
from chave.audit.models import AuditEvent
from chave.counter.models import Staff
from chave.login.tests.pages import speak

pytestmark = pytest.mark.django_db


def test_cli_creates_an_account_and_prints_password_and_totp_uri_once(capsys, clock):
    call_command("staff", "add", "--username", "ana", "--name", "Ana Lopes", "--role", "clerk",
                 "--counter", "Loja Porto", "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["role"] == "clerk" and out["counter"] == "Loja Porto"
    totp = pyotp.parse_uri(out["totp_uri"])
    assert out["totp_uri"].startswith("otpauth://totp/Chave:ana?") and len(out["password"]) >= 16
    staff = Staff.objects.get(user__username="ana")
    # Neither the password nor the TOTP secret is stored in clear.
    assert out["password"] not in staff.user.password and totp.secret not in staff.totp_sealed
    assert staff.user.check_password(out["password"])
    assert not staff.user.is_staff  # no Django admin


@translation.override("en")
def test_cli_refuses_bad_input_without_writing(capsys):
    with pytest.raises(CommandError, match="counter"):
        call_command("staff", "add", "--username", "bob", "--name", "Bob", "--role", "clerk")
    call_command("staff", "add", "--username", "eve", "--name", "Eve", "--role", "auditor")
    with pytest.raises(CommandError, match="taken"):
        call_command("staff", "add", "--username", "eve", "--name", "Eve 2", "--role", "auditor")
    with pytest.raises(CommandError):
        call_command("staff", "add", "--username", "x", "--name", "X", "--role", "boss")
    assert list(Staff.objects.values_list("user__username", flat=True)) == ["eve"]


def test_sign_in_needs_password_and_a_fresh_totp_code(client, make_staff, clock):
    login = make_staff()
    wrong_code = f"{(int(login.code()) + 1) % 1_000_000:06d}"
    for data in ({"password": "wrong", "code": login.code()}, {"password": login.password, "code": wrong_code},
                 {"password": login.password, "code": ""}):
        response = client.post("/counter/login", {"username": login.username, **data})
        assert response.status_code == 400
        assert client.get("/counter/find/").status_code == 302  # still signed out
    code = login.code()
    response = client.post("/counter/login", {"username": login.username, "password": login.password, "code": code})
    assert response.status_code == 302 and client.get("/counter/find/").status_code == 200
    # The same code cannot be used again (another browser replaying it).
    client.post("/counter/logout")
    response = client.post("/counter/login", {"username": login.username, "password": login.password, "code": code})
    assert response.status_code == 400
    outcomes = list(AuditEvent.objects.filter(event="staff.sign_in").values_list("outcome", flat=True))
    # An empty code is refused by the form before anything is checked.
    assert sorted(outcomes) == ["ok", "wrong", "wrong", "wrong"]


def test_unknown_username_gets_the_same_answer(client, make_staff):
    speak(client, "en")
    login = make_staff()
    known = client.post("/counter/login", {"username": login.username, "password": "nope", "code": "123456"})
    unknown = client.post("/counter/login", {"username": "nobody", "password": "nope", "code": "123456"})
    assert known.status_code == unknown.status_code == 400
    message = "The username, password or code is not correct."
    assert message in known.content.decode() and message in unknown.content.decode()


def test_sign_in_is_throttled_per_username(client, make_staff, settings):
    login = make_staff()
    limit = policy.throttle("staff_login_per_user").limit
    for _ in range(limit):
        client.post("/counter/login", {"username": login.username, "password": "bad", "code": "000000"})
    response = client.post("/counter/login", {"username": login.username, "password": login.password,
                                              "code": login.code()})
    assert response.status_code == 429


def test_a_counter_s_desks_behind_one_address_all_sign_in(make_staff, clock):
    """Every desk of a Loja do Cidadão may reach Chave from one address: signing in is no guess,
    so only failed sign-ins use up the address's limit (and the member's own)."""
    import datetime as dt

    from django.test import Client

    limit = policy.throttle("staff_login_per_ip").limit
    for desk in range(limit + 5):
        login = make_staff()
        for _ in range(2):  # each member signs in twice (a new TOTP step each time)
            clock.travel(dt.timedelta(seconds=30))
            response = Client(REMOTE_ADDR="203.0.113.40").post("/counter/login", {
                "username": login.username, "password": login.password, "code": login.code()})
            assert response.status_code == 302, desk
    wrong = [Client(REMOTE_ADDR="203.0.113.40").post("/counter/login", {
        "username": f"nobody{i}", "password": "bad", "code": "000000"}).status_code for i in range(limit + 1)]
    assert wrong == [400] * limit + [429]


def test_idle_session_ends(staff_client, clock):
    client = staff_client("clerk")
    idle = policy.get("staff_idle_seconds")
    clock.travel(dt.timedelta(seconds=idle - 5))
    assert client.get("/counter/find/").status_code == 200  # activity keeps it alive
    clock.travel(dt.timedelta(seconds=idle + 1))
    response = client.get("/counter/find/")
    assert response.status_code == 302 and response["Location"].startswith("/counter/login")
    assert client.get("/counter/find/").status_code == 302  # and it stays ended


@pytest.mark.parametrize(("role", "allowed", "refused"), [
    ("clerk", ["/counter/find/"], ["/counter/report/", "/counter/letters/"]),
    ("supervisor", ["/counter/find/", "/counter/report/"], ["/counter/letters/"]),
    ("auditor", ["/counter/find/", "/counter/report/"], ["/counter/letters/"]),
    ("mailroom", ["/counter/letters/"], ["/counter/find/", "/counter/report/"]),
    ("rp-admin", [], ["/counter/find/", "/counter/report/", "/counter/letters/"]),
])
def test_each_role_sees_only_its_pages(staff_client, role, allowed, refused):
    client = staff_client(role, counter="Loja Porto")
    for url in allowed:
        assert client.get(url).status_code == 200, url
    for url in refused:
        assert client.get(url).status_code == 403, url
    assert AuditEvent.objects.filter(event="counter.refused").count() == len(refused)


def test_a_citizen_session_is_not_a_staff_session(client, make_citizen):
    assert client.get("/counter/find/").status_code == 302
    assert client.get("/counter/").status_code == 302


@pytest.mark.django_db(transaction=True)
def test_one_code_signs_in_once_under_concurrency(make_staff, clock):
    from chave.counter import services
    from chave.throttle.tests.parallel import run_together

    login = make_staff()
    code = login.code()
    decisions = run_together(6, lambda i: services.check_staff_sign_in(login.username, login.password, code,
                                                                       ip=f"198.51.100.{i + 1}"))
    assert [d.ok for d in decisions].count(True) == 1


def test_in_development_the_cli_shows_the_current_code_and_demo_staff_sign_in_with_it(client, settings, capsys):
    from chave.counter import services

    services.ensure_demo_staff("balcao", name="Demo Clerk", role="clerk", counter="Loja Demo", password="pw-demo-1")
    services.ensure_demo_staff("balcao", name="Demo Clerk", role="clerk", counter="Loja Demo", password="pw-demo-1")
    assert Staff.objects.filter(user__username="balcao").count() == 1  # idempotent
    call_command("staff", "totp", "balcao")
    code = capsys.readouterr().out.strip()
    response = client.post("/counter/login", {"username": "balcao", "password": "pw-demo-1", "code": code})
    assert response.status_code == 302 and client.get("/counter/find/").status_code == 200

    settings.IS_PRODUCTION = True
    with pytest.raises(CommandError):
        call_command("staff", "totp", "balcao")
    with pytest.raises(services.ValidationError):
        services.ensure_demo_staff("other", name="X", role="auditor", counter="", password="pw")
