"""An X account (codes by direct message) linked at the counter: the code sent there is typed by the
citizen on the citizen screen; offered only while the X channel is configured."""

import pytest

from chave.identity import services as identity
from chave.identity.models import ContactKind

pytestmark = pytest.mark.django_db(transaction=True)  # the outbox worker runs
X_USER = "1456789012345678901"


def body(response) -> str:
    return response.content.decode()


def test_a_clerk_links_an_x_account_confirmed_on_the_citizen_screen(staff_client, make_citizen, outbox, settings):
    from chave.counter.tests.screen import paired_screen, type_code

    settings.CHAVE_X_PROVIDER = "sink"
    key = make_citizen(nic="12345678")
    desk = staff_client("clerk")
    device = paired_screen(desk)
    page = body(desk.get(f"/counter/citizen/{key.citizen.pk}/contact"))
    assert 'value="x"' in page
    response = desk.post(f"/counter/citizen/{key.citizen.pk}/contact", {
        "contact-presented_type": "cc", "contact-presented_country": "PT", "contact-presented_number": "12345678",
        "contact-reason": "The citizen wants codes on X", "contact-kind": "x", "contact-value": X_USER})
    assert response.status_code == 302
    assert "X •••901" in body(device.get("/counter/screen/"))
    assert 'id="screen-thanks"' in body(type_code(device, outbox.last_code(X_USER)))
    assert identity.find_key_by_contact(ContactKind.X, X_USER).pk == key.pk
    settings.CHAVE_X_PROVIDER = "off"
    assert 'value="x"' not in body(desk.get(f"/counter/citizen/{key.citizen.pk}/contact"))
