"""The Chave app in real browsers (Debian's chromium through Playwright), in both languages: a
desktop context on Chave's pages and a phone-sized context running the app's own JavaScript with
WebCrypto (non-extractable keys in IndexedDB). Pair, then sign in by a code pushed to the app, by
number matching, by an offline code with the phone offline (the service worker serves the app),
and by QR sign-in; remove the device and see its approval refused. Every page is checked against
its Content-Security-Policy (``new_page``): the app runs only Chave's scripts, the rest none."""

from __future__ import annotations

import os
import re

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from chave.app.models import Device, DeviceStatus  # noqa: E402
from chave.audit.models import AuditEvent  # noqa: E402
from chave.login.tests.pages import says  # noqa: E402
from chave.testing.browser import expect, fits_the_screen  # noqa: E402

from .conftest import EMAIL, PHONE, PIN  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LANGS = [("pt-pt", "pt-PT"), ("en", "en-GB")]
DESKTOP = {"width": 1280, "height": 800}
WAIT = 20_000  # ms: the app asks every 3 s, the login pages refresh every 3 or 5 s
SHOTS = os.environ.get("CHAVE_SCREENSHOTS")


def shot(page, name):
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def read_qr(locator) -> str:
    """What a camera reads from the QR code on the screen (zxing-cpp on a screenshot)."""
    import io

    import zxingcpp
    from PIL import Image

    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(locator.screenshot())))
    assert len(found) == 1, found
    return found[0].text


def on(app):
    """What the app shows now: its one visible screen."""
    return app.locator(".screen:not([hidden])")


def desktop_login(new_page, live_server, lang, locale):
    page = new_page(viewport=DESKTOP, locale=locale)
    page.goto(live_server.url + "/login/")
    page.get_by_label(says("Mobile number or e-mail", lang)).fill("912 345 678")
    page.get_by_label(says("PIN of the Digital Mobile Key", lang)).fill(PIN)
    page.get_by_role("button", name=says("Continue", lang)).click()
    page.wait_for_url(re.compile(r"/login/channel/$"))
    return page


def choose(page, label, lang):
    page.get_by_label(label).check()
    page.get_by_role("button", name=says("Send the code", lang)).click()


def signed_in(page, lang, method_words):
    page.wait_for_url(re.compile(r"/login/done/$"), timeout=WAIT)
    assert page.locator("#method").inner_text() == says(method_words, lang)
    assert page.locator("#level").inner_text() == "3"


@pytest.mark.parametrize(("lang", "locale"), LANGS)
def test_pair_and_sign_in_every_way_then_remove(live_server, new_page, phone, make_citizen, outbox, run_worker,
                                                settings, lang, locale):
    # The QR code's 5-second step is a race against a busy shared machine here (screenshot, decode,
    # open the link): a longer step; tests/test_login_by_app.py checks that a changed code is refused.
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "app_qr_step_seconds": 30}
    key = make_citizen(phone=PHONE, email=EMAIL, pin=PIN)
    # --- Pair: the personal area on the computer, the app on the phone.
    area = new_page(viewport=DESKTOP, locale=locale)
    area.goto(live_server.url + "/area/app/")
    area.wait_for_url(re.compile(r"/area/enter/"))
    area.get_by_role("link", name=says("Sign in with the Digital Mobile Key", lang)).click()
    area.get_by_label(says("Mobile number or e-mail", lang)).fill("912 345 678")
    area.get_by_label(says("PIN of the Digital Mobile Key", lang)).fill(PIN)
    area.get_by_role("button", name=says("Continue", lang)).click()
    choose(area, says("SMS to %s", lang) % "+351••••••678", lang)
    area.get_by_label(says("Security code", lang)).fill(outbox.last_code(PHONE))
    area.get_by_role("button", name=says("Sign in", lang), exact=True).click()
    area.wait_for_url(re.compile(r"/area/app/$"))
    area.get_by_role("button", name=says("Add the app to a device", lang)).click()
    code = area.locator("#pairing-code").inner_text().replace(" ", "")
    qr = area.get_by_role("img", name=says("QR code to add the Chave app", lang))
    assert read_qr(qr) == f"{settings.CHAVE_PUBLIC_URL}/app/#pair={code}"  # what a phone's camera reads
    shot(area, f"area-pairing-{lang}")

    app = phone(locale=locale)
    app.goto(live_server.url + "/app/")
    on(app).get_by_role("heading", name=says("The Chave app", lang), level=1).wait_for()
    on(app).get_by_label(says("Pairing code", lang)).fill(code.lower())  # typed as it comes
    on(app).get_by_label(says("Name of the device", lang)).fill("Telemóvel da Maria")
    on(app).get_by_role("button", name=says("Add this device", lang)).click()
    on(app).get_by_role("heading", name=says("Confirm with the SMS code", lang)).wait_for()
    assert "+351••••••678" in app.locator("#confirm-sent").inner_text()
    on(app).get_by_label(says("Security code", lang)).fill(outbox.last_code(PHONE))
    on(app).get_by_role("button", name=says("Confirm", lang)).click()
    app.locator("#offline-code").filter(has_text=re.compile(r"^\d{6}$")).wait_for(timeout=WAIT)
    fits_the_screen(app)
    shot(app, f"app-home-{lang}")
    # What is secret stayed in WebCrypto: the stored keys are not extractable, nothing in localStorage.
    stored = app.evaluate("""async () => {
        const db = await new Promise((ok) => { const r = indexedDB.open("chave-app"); r.onsuccess = () => ok(r.result); });
        const device = await new Promise((ok) => { const g = db.transaction("state").objectStore("state").get("device");
                                                    g.onsuccess = () => ok(g.result); });
        return {sign: device.privateKey.extractable, hmac: device.hmacKey.extractable,
                type: device.privateKey.type, storage: localStorage.length};
    }""")
    assert stored == {"sign": False, "hmac": False, "type": "private", "storage": 0}
    device = Device.objects.get(key=key, status=DeviceStatus.ACTIVE)

    # --- A code pushed to the app (polled while the app is open).
    desk = desktop_login(new_page, live_server, lang, locale)
    choose(desk, says("A code in the Chave app on “%s”", lang).replace("%s", "Telemóvel da Maria"), lang)
    desk.wait_for_url(re.compile(r"/login/code/$"))
    run_worker()
    pushed = app.locator(".code-item .big-code").first
    pushed.wait_for(timeout=WAIT)
    shot(app, f"app-code-{lang}")
    desk.get_by_label(says("Security code", lang)).fill(pushed.inner_text())
    desk.get_by_role("button", name=says("Sign in", lang), exact=True).click()
    signed_in(desk, lang, "Digital Mobile Key, code by the Chave app")

    # --- Number matching.
    desk = desktop_login(new_page, live_server, lang, locale)
    choose(desk, says("Approve in the Chave app (you match a number)", lang), lang)
    desk.wait_for_url(re.compile(r"/login/approve/$"))
    number = desk.locator("#match-number").inner_text()
    shot(desk, f"login-approve-{lang}")
    on(app).get_by_role("button", name=says("Number {number}", lang).replace("{number}", number)).wait_for(timeout=WAIT)
    shot(app, f"app-approval-{lang}")
    on(app).get_by_role("button", name=says("Number {number}", lang).replace("{number}", number)).click()
    signed_in(desk, lang, "Digital Mobile Key, approved in the Chave app")  # by the meta refresh

    # --- An offline code, the phone without network (the service worker serves the app).
    app.context.set_offline(True)
    app.reload()
    expect(app.locator("#network")).to_be_visible()
    offline = app.locator("#offline-code").filter(has_text=re.compile(r"^\d{6}$"))
    offline.wait_for(timeout=WAIT)
    shot(app, f"app-offline-{lang}")
    desk = desktop_login(new_page, live_server, lang, locale)
    choose(desk, says("Type a code the Chave app makes (works without network)", lang), lang)
    desk.wait_for_url(re.compile(r"/login/code/$"))
    desk.get_by_label(says("Security code", lang)).fill(offline.inner_text())
    desk.get_by_role("button", name=says("Sign in", lang), exact=True).click()
    signed_in(desk, lang, "Digital Mobile Key, offline code from the Chave app")
    app.context.set_offline(False)

    # --- QR sign-in: the short code under the QR code, then the PIN in the app.
    desk = new_page(viewport=DESKTOP, locale=locale)
    desk.goto(live_server.url + "/login/")
    desk.get_by_role("link", name=says("Sign in with the Chave app", lang)).click()
    desk.wait_for_url(re.compile(r"/login/app/$"))
    shot(desk, f"login-qr-{lang}")
    typed = desk.locator("#sign-in-code").inner_text()
    on(app).get_by_role("button", name=says("Scan a sign-in code", lang)).click(timeout=WAIT)
    on(app).get_by_label(says("Short code", lang)).fill(typed)
    on(app).get_by_role("button", name=says("Continue", lang)).click()
    on(app).get_by_label(says("PIN of the Digital Mobile Key", lang)).fill(PIN)
    shot(app, f"app-qr-pin-{lang}")
    on(app).get_by_role("button", name=says("Sign in", lang)).click()
    on(app).get_by_text(says("Signed in on the computer.", lang)).wait_for(timeout=WAIT)
    desk.wait_for_url(re.compile(r"/login/done/$"), timeout=WAIT)
    assert desk.locator("#method").inner_text() == says("Chave app and PIN (QR code)", lang)
    on(app).get_by_role("button", name=says("Back", lang)).click()

    # --- QR sign-in by the camera: the QR code read from the screen opens the app, which scans it.
    desk = new_page(viewport=DESKTOP, locale=locale)
    desk.goto(live_server.url + "/login/app/")
    link = read_qr(desk.get_by_role("img", name=says("Sign-in code for the Chave app (it changes every few seconds)",
                                                       lang)))
    assert link.startswith(f"{settings.CHAVE_PUBLIC_URL}/app/#qr=")
    app.goto(live_server.url + "/app/#" + link.split("#", 1)[1])
    on(app).get_by_label(says("PIN of the Digital Mobile Key", lang)).fill(PIN)
    on(app).get_by_role("button", name=says("Sign in", lang)).click()
    on(app).get_by_text(says("Signed in on the computer.", lang)).wait_for(timeout=WAIT)
    desk.wait_for_url(re.compile(r"/login/done/$"), timeout=WAIT)
    on(app).get_by_role("button", name=says("Back", lang)).click()

    # --- Remove the device: its answer to a waiting approval is refused.
    desk = desktop_login(new_page, live_server, lang, locale)
    choose(desk, says("Approve in the Chave app (you match a number)", lang), lang)
    desk.wait_for_url(re.compile(r"/login/approve/$"))
    number = desk.locator("#match-number").inner_text()
    tap = on(app).get_by_role("button", name=says("Number {number}", lang).replace("{number}", number))
    tap.wait_for(timeout=WAIT)
    area.goto(live_server.url + f"/area/app/{device.pk}/remove/")
    area.get_by_role("button", name=says("Remove the device", lang)).click()
    area.wait_for_url(re.compile(r"/area/app/$"))
    tap.click()
    app.locator("#message").filter(has_text=says(
        "This device was removed from your key. Add it again in the personal area to use it.", lang)).wait_for(
        timeout=WAIT)
    on(app).get_by_role("heading", name=says("The Chave app", lang), level=1).wait_for()
    assert not AuditEvent.objects.filter(event="app.approval", outcome="ok", detail__device=str(device.pk),
                                         at__gte=Device.objects.get(pk=device.pk).removed_at).exists()
    assert sorted(AuditEvent.objects.filter(event="login", citizen=key.citizen, channel__startswith="app")
                  .values_list("channel", flat=True)) == ["app", "app_approve", "app_offline", "app_qr", "app_qr"]


def test_the_service_worker_shows_a_pushed_code_as_a_notification(live_server, phone):
    """What the browser's push service hands the service worker (RFC 8291 already decrypted), as
    Chromium's DevTools protocol delivers it: the app shows the portal and the code."""
    import json

    app = phone(locale="en-GB")
    app.context.grant_permissions(["notifications"], origin=live_server.url)
    app.goto(live_server.url + "/app/")
    app.evaluate("navigator.serviceWorker.ready.then(() => true)")
    cdp = app.context.new_cdp_session(app)
    registrations = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"]))
    cdp.send("ServiceWorker.enable")
    for _ in range(100):  # each round trip lets Playwright deliver the protocol's events
        if any(r["scopeURL"].endswith("/app/") for r in registrations):
            break
        app.evaluate("navigator.serviceWorker.ready.then(() => true)")
    registration = next(r for r in registrations if r["scopeURL"].endswith("/app/") and not r["isDeleted"])
    message = {"type": "code", "purpose": "login", "portal": "Portal das Finanças", "code": "482913",
               "text": "Chave: your security code to sign in to Portal das Finanças…", "expires_at": None}
    cdp.send("ServiceWorker.deliverPushMessage", {"origin": live_server.url, "registrationId":
                                                  registration["registrationId"], "data": json.dumps(message)})
    app.wait_for_function("""navigator.serviceWorker.ready.then(r => r.getNotifications())
                             .then(n => n.length > 0)""", timeout=WAIT)
    shown = app.evaluate("""navigator.serviceWorker.ready.then(r => r.getNotifications())
                            .then(n => n.map(x => ({title: x.title, body: x.body})))""")
    assert shown[0]["title"] == "Chave · Portal das Finanças" and shown[0]["body"].startswith("482913")
