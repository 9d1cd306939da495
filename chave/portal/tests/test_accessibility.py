"""What assistive technology finds on every page of the personal area, for a signed-in citizen, in
both languages: one <h1> and headings in order, landmarks and the skip link, labelled fields,
named buttons, unique ids and the page language (``chave.testing.accessibility``); also the pages
a refusal or a finished action shows."""

from __future__ import annotations

import pytest
from django.conf import settings

from chave.audit.models import AuditEvent
from chave.testing.accessibility import assert_accessible, walk

from .helpers import PIN
from .test_history_portals_export import _portal_login

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.once]  # the same on any database: SQLite pass only

# Each page: the requests that reach it from the signed-in area, and the status it answers with.
PAGES = {
    "home": ([("get", "/area/")], 200),
    "history": ([("get", "/area/history/")], 200),
    "portals": ([("get", "/area/portals/")], 200),
    "export": ([("get", "/area/export/")], 200),
    "pin": ([("get", "/area/pin/")], 200),
    "pin, wrong PIN": ([("post", "/area/pin/", {"pin": "5827"})], 400),
    "pin confirm": ([("post", "/area/pin/", {"pin": PIN}), ("get", "/area/pin/confirm/")], 200),
    "pin confirm, wrong code": ([("post", "/area/pin/", {"pin": PIN}),
                                 ("post", "/area/pin/confirm/", {"code": "000000", "new_pin": "5830",
                                                                 "new_pin_again": "5830"})], 400),
    "mobile": ([("get", "/area/contact/mobile/")], 200),
    "e-mail": ([("get", "/area/contact/email/")], 200),
    "mobile, bad number": ([("post", "/area/contact/mobile/", {"value": "12"})], 400),
    "contact confirm": ([("post", "/area/contact/mobile/", {"value": "913 000 111"}),
                         ("get", "/area/contact/confirm/")], 200),
    "cancel": ([("get", "/area/cancel/")], 200),
    "cancel, no box": ([("post", "/area/cancel/", {"pin": PIN})], 400),
    "cancelled": ([("post", "/area/cancel/", {"confirm": "on", "pin": PIN})], 200),
    "not me": ([("get", "/area/history/{event}/not-me/")], 200),
    "reported": ([("post", "/area/history/{event}/not-me/")], 200),
}


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
@pytest.mark.parametrize("name", list(PAGES))
def test_every_personal_area_page_is_accessible(area, key, outbox, name, lang):
    _portal_login(area, outbox)  # so that the portals and the history have rows, with their buttons
    area.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    event = AuditEvent.objects.filter(event="login", citizen=key.citizen).latest("at").pk
    steps, status = PAGES[name]
    assert_accessible(walk(area, steps, event=event), lang, name, status=status)
