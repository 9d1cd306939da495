"""``chave seed_demo`` run again puts the demo key back in working order: unlocked, the demo PIN,
and no limit on codes left over from earlier tries (README, "The two commands")."""

import pytest

from chave import policy
from chave.codes import services as codes
from chave.codes.models import Purpose
from chave.identity.models import Citizen
from chave.public.management.commands import seed_demo

pytestmark = pytest.mark.django_db


def _send(key, n: int):
    return codes.issue_code(key, purpose=Purpose.LOGIN, transaction=f"demo-{n}", channel="sms",
                            destination=seed_demo.DEMO_PHONE, ip=f"192.0.2.{n % 200}")


def test_a_second_seed_clears_the_demo_key_s_send_caps(settings):
    settings.CHAVE_ENV = "dev"
    seed_demo.Command().seed()
    key = Citizen.objects.get(doc_number=seed_demo.DEMO_NIC).key
    limit, _window = policy.get("throttles")["code_send_per_key"]
    sent = [_send(key, n) for n in range(limit + 1)]
    assert all(s.sent for s in sent[:limit]) and sent[-1].reason == "rate_limited"
    notes = seed_demo.Command().seed()
    assert any("limit" in str(n) or "limites" in str(n) for n in notes)  # it says so, in the active language
    assert _send(key, limit + 1).sent
