"""``chave staff add``: create a staff account and print its password and TOTP provisioning URI once;
``chave staff totp <username>`` (development only): the account's current authenticator code.

``chave staff add --username U --name "…" --role clerk|supervisor|rp-admin|auditor|mailroom
[--counter C] [--nic NIC] [--form n|f|m] [--json]``. With ``--nic`` the member may also sign in with their own
Citizen Card. The password and the ``otpauth://`` URI (load it into an authenticator
app, e.g. as a QR code) are printed this once and kept nowhere in clear: the password as an
Argon2 hash, the TOTP secret sealed. Bad arguments exit non-zero without a traceback or a write.
"""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.utils.translation import gettext as _

from chave.commands import ChaveCommand
from chave.counter import services
from chave.counter.roles import Role, RoleForm


class Command(ChaveCommand):
    help = "Counter staff accounts: add (and, in development, totp)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="create a staff account; prints its password and TOTP URI once")
        add.add_argument("--username", required=True)
        add.add_argument("--name", required=True)
        add.add_argument("--role", required=True, choices=Role.values)
        add.add_argument("--counter", default="", help="the counter (clerks and supervisors)")
        add.add_argument("--nic", default="", help="the member's civil ID number: they may also sign in with their "
                                                   "own Citizen Card")
        add.add_argument("--form", default="n", choices=RoleForm.values,
                         help="how the role is written about the member: n (neutral), f (feminine), m (masculine)")
        add.add_argument("--admin", action="store_true",
                         help="may also use Django's admin at /admin/ (entered through the counter sign-in)")
        add.add_argument("--json", action="store_true")
        totp = sub.add_parser("totp", help="development only: the account's current authenticator code")
        totp.add_argument("username")

    def handle(self, *args, **opts):
        if opts["action"] == "totp":
            try:
                self.stdout.write(services.current_totp_code(opts["username"]))
            except ValidationError as error:
                raise CommandError(" ".join(error.messages))
            return
        try:
            new = services.create_staff(username=opts["username"], name=opts["name"], role=opts["role"],
                                        counter=opts["counter"], nic=opts["nic"], admin=opts["admin"],
                                        role_form=opts["form"])
        except ValidationError as error:
            raise CommandError(" ".join(error.messages))
        result = {"username": new.staff.username, "name": new.staff.name, "role": new.staff.role,
                  "counter": new.staff.counter, "nic": new.staff.nic, "admin": new.staff.user.is_staff,
                  "password": new.password, "totp_uri": new.provisioning_uri}
        if opts["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(_("Staff account %(username)s (%(role)s) created.") % {
            "username": result["username"], "role": result["role"]})
        self.stdout.write(_("Password (shown once): %(password)s") % {"password": new.password})
        self.stdout.write(_("TOTP provisioning URI (shown once; load it into an authenticator app):"))
        self.stdout.write(new.provisioning_uri)
