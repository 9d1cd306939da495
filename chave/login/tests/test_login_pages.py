"""The login through the pages, as a citizen does it (Django test client)."""

import pytest

from chave.identity.models import KeyStatus

pytestmark = pytest.mark.django_db(transaction=True)


def _sign_in(client, identifier, pin):
    return client.post("/login/", {"identifier": identifier, "pin": pin})


def test_pin_then_sms_code_signs_in_at_level_3(client, make_citizen, outbox):
    make_citizen(phone="+351912345678", pin="4719")
    response = _sign_in(client, "912 345 678", "4719")
    assert response.status_code == 302 and response["Location"].endswith("/login/code/")
    page = client.get("/login/code/")
    assert "+351••••••678" in page.content.decode()
    code = outbox.last_code("+351912345678")
    response = client.post("/login/code/", {"code": code})
    assert response.status_code == 302 and response["Location"].endswith("/login/done/")
    done = client.get("/login/done/").content.decode()
    assert "Maria Teste Silva" in done
    assert 'id="level">3<' in done


def test_unknown_number_and_wrong_pin_get_the_same_answer(client, make_citizen):
    make_citizen(phone="+351912345678", pin="4719")
    wrong_pin = _sign_in(client, "912345678", "5820")
    unknown = _sign_in(client, "913000000", "5820")
    assert wrong_pin.status_code == unknown.status_code == 400
    extract = lambda r: r.content.decode().split('<div class="error-summary"')[1].split("</div>")[0]
    assert extract(wrong_pin) == extract(unknown)


def test_three_wrong_pins_lock_the_key(client, make_citizen):
    key = make_citizen(phone="+351912345678", pin="4719")
    for _ in range(3):
        _sign_in(client, "912345678", "5820")
    key.refresh_from_db()
    assert key.status == KeyStatus.LOCKED
    # Even the right PIN is refused while locked, with the same words as a wrong one.
    response = _sign_in(client, "912345678", "4719")
    assert response.status_code == 400
