"""The browser tests' Chromium (``chave/testing/browser.py``): when it dies, the test it dies in
fails and says so, with what Chromium printed; the module's next tests get a new one."""

import os

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from playwright.sync_api import Error  # noqa: E402

from chave.testing.browser import expect  # noqa: E402

pytestmark = pytest.mark.browser


def test_a_chromium_that_dies_is_named_and_the_next_test_gets_a_new_one(chromium, request, capfd):
    first = chromium.for_test(request.node.nodeid)
    page = first.new_page()
    page.set_content("<p>before</p>")
    with pytest.raises(Error):  # the connection goes with the browser
        first.new_browser_cdp_session().send("Browser.crash")
    with pytest.raises(Error):
        page.set_content("<p>after</p>")
    assert not first.is_connected()
    # (Chromium's own output goes to pytest's capture of the whole run, shown with a failing
    # test's report; capfd, which replaces it for this test alone, does not see the driver's.)
    assert f"chromium exited during {request.node.nodeid}" in capfd.readouterr().err

    second = chromium.for_test("the next test")
    assert second is not first and second.is_connected()
    page = second.new_page()
    page.set_content("<p id='alive'>a new browser</p>")
    expect(page.locator("#alive")).to_have_text("a new browser")
    page.close()
