"""Dates, times and waits read as each language writes them; no ISO date on a page."""

import datetime as dt

import pytest
from django.template import Context, Template
from django.utils import timezone, translation

from chave import formats

MOMENT = timezone.make_aware(dt.datetime(1985, 3, 14, 10, 17), timezone.get_fixed_timezone(0))


@pytest.mark.parametrize("language, date, moment", [
    ("pt-pt", "14 de março de 1985", "14 de março de 1985 às 10:17"),
    ("en", "14 March 1985", "14 March 1985 at 10:17"),
])
def test_dates_in_words(language, date, moment):
    with translation.override(language), timezone.override("Europe/Lisbon"):
        assert formats.day(dt.date(1985, 3, 14)) == date
        assert formats.moment(MOMENT) == moment  # Lisbon is on UTC in March
        # Templates get the same words through the built-in filters and Django's own |date.
        page = Template('{{ d|day }}|{{ m|moment }}|{{ d|date:"DATE_FORMAT" }}').render(
            Context({"d": dt.date(1985, 3, 14), "m": MOMENT}))
        assert page == f"{date}|{moment}|{date}"


@pytest.mark.parametrize("language, minutes, words", [
    ("pt-pt", 38, "38 minutos"), ("pt-pt", 1, "1 minuto"), ("pt-pt", 65, "1 hora e 5 minutos"),
    ("pt-pt", 60 * 24 + 61, "1 dia e 2 horas"), ("en", 38, "38 minutes"), ("en", 120, "2 hours"),
    ("en", 0, "1 minute"),
])
def test_durations_in_words_with_plurals(language, minutes, words):
    with translation.override(language):
        assert formats.duration(dt.timedelta(minutes=minutes)) == words


def test_a_wait_says_how_long_and_until_when():
    now = timezone.make_aware(dt.datetime(2026, 12, 6, 10, 17), timezone.get_fixed_timezone(0))
    with timezone.override("Europe/Lisbon"):
        with translation.override("pt-pt"):
            assert formats.wait_until(now + dt.timedelta(minutes=38), now) == "em 38 minutos (às 10:55)"
            assert formats.wait_until(now + dt.timedelta(days=1), now) == \
                "em 1 dia (a 7 de dezembro de 2026 às 10:17)"
        with translation.override("en"):
            assert formats.wait_until(now + dt.timedelta(seconds=20), now) == "in 1 minute (at 10:17)"


@pytest.mark.parametrize("language, brazil, united_kingdom", [
    ("pt-pt", "Brasil", "Reino Unido"), ("en", "Brazil", "United Kingdom"),
])
def test_countries_are_named_in_the_language_and_numbers_grouped(language, brazil, united_kingdom):
    with translation.override(language):
        assert formats.country("BR") == brazil and formats.country("gb") == united_kingdom
        assert formats.country("ZZ") == "ZZ"  # no such country: the code as given
        assert formats.phone_number("+351912345678") == "+351 912 345 678"
        assert formats.phone_number("+447400123456") == "+44 7400 123456"
        assert formats.phone_number("not a number") == "not a number"
