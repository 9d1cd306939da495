"""Django's admin is not a back door: an account made with ``chave staff add --admin`` is never a
superuser, and sees there what its role may read, changing nothing but what the table below says.
Each role signs in through the counter and asks the real admin (its index, each model's pages, the
model admins' own permission answers)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory

from chave.counter.roles import Role

pytestmark = pytest.mark.django_db

# What each role may change in the admin — the whole list. The relying-party administrator's
# approve and suspend actions go through the registry's service, with a reason.
MAY_CHANGE = {
    Role.CLERK: {},
    Role.SUPERVISOR: {},
    Role.AUDITOR: {},
    Role.MAILROOM: {},
    Role.RP_ADMIN: {"federation.relyingparty": {"approve", "suspend"}},
}
MAY_READ = {
    Role.CLERK: set(),
    Role.SUPERVISOR: {"audit.auditevent"},
    Role.AUDITOR: {"audit.auditevent", "delivery.outboundmessage", "federation.relyingparty"},
    Role.MAILROOM: set(),
    Role.RP_ADMIN: {"federation.relyingparty"},
}


def what_the_admin_allows(user) -> tuple[set, dict]:
    """(models the user may read, {model: what they may change: add/change/delete/actions})."""
    request = RequestFactory().get("/admin/")
    request.user = user
    readable, changeable = set(), {}
    for model, model_admin in admin.site._registry.items():
        name = f"{model._meta.app_label}.{model._meta.model_name}"
        if model_admin.has_view_or_change_permission(request):
            readable.add(name)
        can = {verb for verb, allowed in (("add", model_admin.has_add_permission(request)),
                                          ("change", model_admin.has_change_permission(request)),
                                          ("delete", model_admin.has_delete_permission(request))) if allowed}
        can |= set(model_admin.get_actions(request)) - {"delete_selected"} if readable & {name} else set()
        if can:
            changeable[name] = can
    return readable, changeable


@pytest.mark.parametrize("role", list(Role))
def test_each_role_reads_and_changes_in_the_admin_only_what_its_table_says(role):
    from chave.counter import services

    counter = "Loja Aveiro" if role in (Role.CLERK, Role.SUPERVISOR) else ""
    made = services.create_staff(username=f"admin-{role.value}", name="Admin", role=role, counter=counter, admin=True)
    user = made.staff.user
    assert user.is_staff and not user.is_superuser
    readable, changeable = what_the_admin_allows(user)
    assert readable == MAY_READ[role]
    assert changeable == MAY_CHANGE[role]


def test_an_admin_account_reaches_no_account_or_group_and_a_superuser_flag_does_not_survive(client, clock):
    import pyotp

    from chave.counter import services

    made = services.create_staff(username="portais", name="Paula Portais", role="rp-admin", admin=True)
    made.staff.user.is_superuser = True  # as earlier versions made it
    made.staff.user.save()
    answer = client.post("/counter/login", {"username": "portais", "password": made.password,
                                            "code": pyotp.parse_uri(made.provisioning_uri).at(clock.now())})
    assert answer.status_code == 302
    made.staff.user.refresh_from_db()
    assert not made.staff.user.is_superuser  # taken away at sign-in
    index = client.get("/admin/").content.decode()
    assert "/admin/federation/relyingparty/" in index and "/admin/auth/user/" not in index
    for path in ("/admin/auth/user/", "/admin/auth/group/", "/admin/audit/auditevent/", "/admin/federation/consent/",
                 "/admin/auth/user/add/"):
        assert client.get(path).status_code == 403, path
