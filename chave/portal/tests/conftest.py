import pytest

from .helpers import EMAIL, PHONE, client_in, enter_with_key


@pytest.fixture
def key(make_citizen):
    """A citizen's active key with a mobile number and an e-mail address."""
    return make_citizen(phone=PHONE, email=EMAIL)


@pytest.fixture
def area(key, outbox):
    """A browser signed in to the personal area with the key (SMS code, level 3)."""
    client = client_in("en")
    enter_with_key(client, outbox)
    return client
