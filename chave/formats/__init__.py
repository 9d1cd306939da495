"""Dates, times, durations, phone numbers and countries as the citizen's language writes them.

pt-PT: "14 de março de 1985", "14 de março de 1985 às 10:17", "em 38 minutos";
en: "14 March 1985", "14 March 1985 at 10:17", "in 38 minutes". Pages use the template filters of
:mod:`chave.formats.filters` (built in to every template), Python code the functions below; no
page shows an ISO date. The date formats themselves are in ``locales/<language>/formats.py``
(``FORMAT_MODULE_PATH``). Phone numbers are grouped as people write them ("+351 912 345 678"),
countries named rather than coded ("Brasil" / "Brazil"), both from phonenumbers' data.
"""

from __future__ import annotations

import datetime as dt

from django.utils import formats, timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

# Django's month names, translated again in Chave's catalogue: Portuguese writes them in lower case
# ("14 de março"), Django's Portuguese catalogue capitalises them. Listed so makemessages keeps them.
MONTHS = (
    gettext_noop("January"), gettext_noop("February"), gettext_noop("March"), gettext_noop("April"),
    gettext_noop("May"), gettext_noop("June"), gettext_noop("July"), gettext_noop("August"),
    gettext_noop("September"), gettext_noop("October"), gettext_noop("November"), gettext_noop("December"),
)


def _local(value):
    if isinstance(value, dt.datetime):
        return timezone.localtime(value) if timezone.is_aware(value) else value
    return value


def day(value) -> str:
    """A date (or the local date of a moment) in words: "14 de março de 1985" / "14 March 1985"."""
    if value in (None, ""):
        return ""
    value = _local(value)
    if isinstance(value, dt.datetime):
        value = value.date()
    return formats.date_format(value, "DATE_FORMAT")


def moment(value) -> str:
    """A date and time in words: "14 de março de 1985 às 10:17" / "14 March 1985 at 10:17"."""
    if value in (None, ""):
        return ""
    value = _local(value)
    if not isinstance(value, dt.datetime):
        return day(value)
    return formats.date_format(value, "DATETIME_FORMAT")


def clock_time(value) -> str:
    """The local time of a moment: "10:17"."""
    if value in (None, ""):
        return ""
    return formats.time_format(_local(value), "TIME_FORMAT")


def duration(delta: dt.timedelta) -> str:
    """A length of time in words, rounded up to the minute: "38 minutos", "1 hora e 5 minutos",
    "2 dias". Under a minute reads "1 minuto" (nobody waits "0 minutes")."""
    seconds = max(0, int(delta.total_seconds()))
    minutes = max(1, -(-seconds // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days and (hours or minutes):  # a wait of days is said in days and hours; minutes add noise
        hours += 1 if minutes else 0
        minutes = 0
        if hours == 24:
            days, hours = days + 1, 0
    parts = []
    if days:
        parts.append(ngettext("%(n)d day", "%(n)d days", days) % {"n": days})
    if hours:
        parts.append(ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours})
    if minutes:
        parts.append(ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes})
    if len(parts) == 1:
        return parts[0]
    return _("%(first)s and %(last)s") % {"first": ", ".join(parts[:-1]), "last": parts[-1]}


def time_until(until: dt.datetime, now: dt.datetime | None = None) -> str:
    """How long until ``until``, in words: "in 38 minutes" / "em 38 minutos"."""
    from chave import clock

    return _("in %(duration)s") % {"duration": duration(until - (now or clock.now()))}


def wait_until(until: dt.datetime, now: dt.datetime | None = None) -> str:
    """When a wait ends, for a refusal: "in 38 minutes (at 10:55)"; a wait that ends on another day
    gives the date: "in 1 day and 2 hours (on 15 March 1985 at 10:55)"."""
    from chave import clock

    now = now or clock.now()
    relative = time_until(until, now)
    if timezone.localdate(until) == timezone.localdate(now):
        return _("%(relative)s (at %(time)s)") % {"relative": relative, "time": clock_time(until)}
    return _("%(relative)s (on %(moment)s)") % {"relative": relative, "moment": moment(until)}


def phone_number(value: str) -> str:
    """A phone number in international form, grouped as people write it: "+351 912 345 678"
    (stored as E.164, "+351912345678"). Anything that does not parse is shown as it is."""
    import phonenumbers

    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def country(code: str) -> str:
    """A country's name in the active language from its ISO 3166 two-letter code ("BR" →
    "Brasil" / "Brazil"), from phonenumbers' geographic data; the code itself where it has none."""
    import phonenumbers
    from phonenumbers import geocoder

    example = phonenumbers.example_number(code.upper()) if code else None
    language = (get_language() or "en").split("-")[0]
    return (geocoder.country_name_for_number(example, language) if example else "") or code
