"""Template filters for dates in words, built in to every template (``TEMPLATES`` builtins):
``{{ citizen.birth_date|day }}``, ``{{ event.at|moment }}``, ``{{ event.at|clock_time }}``,
``{{ lock.until|wait_until }}``."""

from django import template

import chave.formats as formats

register = template.Library()
register.filter("day", formats.day)
register.filter("moment", formats.moment)
register.filter("clock_time", formats.clock_time)
register.filter("wait_until", formats.wait_until)
register.filter("time_until", formats.time_until)
