"""Safe defaults found by review: what an error shows, and a path that climbs out of /static/.

- Django's debug page (development) and every error report mask the secret settings, the
  secrets in the request's environment, PINs typed in a form and secrets held in local variables.
- ``GET /static/..%2f..%2fsettings.py`` through the server's static handler, debug off, is a 400
  page, not a 500.
"""

from __future__ import annotations

import http.client
import secrets
import threading

import pytest
from django.conf import settings as django_settings
from django.core.handlers.wsgi import WSGIHandler
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from chave.public.management.commands.serve import StaticFiles

# Made at run time: the debug page shows the source around each frame, so a literal would be found there.
pytestmark = pytest.mark.once  # the same on any database: SQLite pass only


SECRETS = {name: f"marker-{name.lower()}-{secrets.token_hex(4)}" for name in (
    "SECRET_KEY", "CHAVE_PIN_PEPPER", "CHAVE_PAIRWISE_SALT", "CHAVE_SIGNING_USER_PIN", "CHAVE_KEY_SEAL_SECRET",
    "CHAVE_MESSAGE_KEY", "CHAVE_KANNEL_PASSWORD", "CHAVE_X_BEARER_TOKEN", "EMAIL_HOST_PASSWORD")}
REDIS_PASSWORD = f"marker-redis-{secrets.token_hex(4)}"
TYPED_PIN = str(40000000 + secrets.randbelow(9999999))


@csrf_exempt
def failing_view(request):
    pepper = django_settings.CHAVE_PIN_PEPPER  # a secret in a local variable of the failing frame
    held = {"peppered": pepper}  # and inside a container
    raise RuntimeError(f"something broke ({len(held)})")


urlpatterns = [path("boom/", failing_view), path("", include("chave.urls"))]


@pytest.mark.urls(__name__)
def test_the_debug_page_masks_every_secret_setting_and_what_the_citizen_typed(client, settings):
    settings.DEBUG = True
    for name, value in SECRETS.items():
        setattr(settings, name, value)
    settings.CHAVE_REDIS_URL = f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"
    client.raise_request_exception = False
    # A development server (runserver, wsgiref) copies the process environment into the request.
    environment = {f"CHAVE_{name}" if not name.startswith("CHAVE_") else name: value for name, value in SECRETS.items()}
    response = client.post("/boom/", {"identifier": "912345678", "pin": TYPED_PIN}, **environment)
    assert response.status_code == 500
    page = response.content.decode()
    assert "Traceback" in page and "CHAVE_PIN_PEPPER" in page  # the debug page, settings included
    for value in [*SECRETS.values(), REDIS_PASSWORD, TYPED_PIN]:
        assert value not in page, f"the debug page shows {value!r}"
    assert "redis://:********************@127.0.0.1:6379/0" in page
    assert "912345678" in page  # what is not secret is still shown

    # The plain-text report (logs, error e-mails) is filtered the same way.
    from django.views.debug import ExceptionReporter

    try:
        failing_view(None)
    except RuntimeError:
        import sys

        text = ExceptionReporter(None, *sys.exc_info()).get_traceback_text()
    assert "CHAVE_PAIRWISE_SALT" in text
    for value in [*SECRETS.values(), REDIS_PASSWORD]:
        assert value not in text, f"the text report shows {value!r}"


@pytest.fixture
def static_server():
    """The web service's static-file handler (as `chave serve` wraps Django) in waitress, on 127.0.0.1."""
    import waitress

    server = waitress.create_server(StaticFiles(WSGIHandler()), host="127.0.0.1", port=0, threads=2)
    stopping = threading.Event()

    def serve():
        try:
            server.run()
        except OSError:  # waitress has no stop from another thread: closing pulls the socket from its select
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.effective_port
    finally:
        stopping.set()
        server.close()
        thread.join(timeout=5)


@pytest.mark.parametrize("climb", ["..%2f..%2fsettings.py", "../../settings.py", "%2e%2e/%2e%2e/settings.py",
                                   "chave/..%2f..%2f..%2fsettings.py"])
def test_a_static_path_climbing_out_is_a_400_page_with_debug_off(static_server, settings, climb):
    settings.DEBUG = False
    connection = http.client.HTTPConnection("127.0.0.1", static_server, timeout=10)
    connection.request("GET", "/static/" + climb, headers={"Host": "127.0.0.1"})
    response = connection.getresponse()
    body = response.read().decode()
    assert response.status == 400
    assert 'id="bad-request"' in body and "SECRET_KEY" not in body
    connection.request("GET", "/static/chave/does-not-exist.css", headers={"Host": "127.0.0.1"})
    missing = connection.getresponse()
    missing.read()
    assert missing.status == 404
