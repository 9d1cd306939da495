"""``chave signing integrator …``: an SCMD integrator's credentials printed once, rotated, listed
(no secret), disabled; ``--soap`` is required."""

from __future__ import annotations

import base64
import io
import json

import pytest
from django.core.management import CommandError, call_command

from chave.audit.models import AuditEvent
from chave.scmd import services
from chave.scmd.models import Integrator

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command("signing", *args, stdout=out)
    return out.getvalue()


def test_add_rotate_list_disable(client, signing_pki):
    made = json.loads(run("integrator", "add", "--name", "Câmara Municipal", "--soap", "--json"))
    integrator = Integrator.objects.get(username=made["username"])
    assert integrator.application_id == made["application_id"] and made["wsdl"].endswith("/scmd/SCMDService.svc?wsdl")
    assert made["password"] not in integrator.secret_hash
    header = "Basic " + base64.b64encode(f"{made['username']}:{made['password']}".encode()).decode()
    assert services.authenticate(header) == integrator
    rotated = json.loads(run("integrator", "rotate", made["username"], "--json"))
    assert services.authenticate(header) is None
    assert services.authenticate("Basic " + base64.b64encode(
        f"{made['username']}:{rotated['password']}".encode()).decode()) == integrator
    listing = run("integrator", "list")
    assert made["username"] in listing and rotated["password"] not in listing
    run("integrator", "disable", made["username"])
    assert services.authenticate("Basic " + base64.b64encode(
        f"{made['username']}:{rotated['password']}".encode()).decode()) is None
    printed = run("integrator", "add", "--name", "Universidade", "--soap", "--application-id", "app-uni-1")
    assert "password:" in printed and "application_id: app-uni-1" in printed
    with pytest.raises(CommandError):
        run("integrator", "add", "--name", "Outra", "--soap", "--application-id", "app-uni-1")
    with pytest.raises(CommandError, match="--soap"):
        run("integrator", "add", "--name", "Sem SOAP")
    with pytest.raises(CommandError):
        run("integrator", "rotate", "scmd-nobody")
    events = AuditEvent.objects.filter(event__startswith="scmd.integrator")
    assert events.count() == 4 and rotated["password"] not in str(list(events.values_list("detail", flat=True)))
