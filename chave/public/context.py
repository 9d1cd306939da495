import re

from django.conf import settings


def site(request):
    """What every page may show: help contacts and whether this is a development instance."""
    phone = settings.CHAVE_HELP_PHONE or ""
    return {
        "help_email": settings.CHAVE_HELP_EMAIL,
        "help_phone": phone,
        # For tel: links, which must not contain spaces.
        "help_phone_uri": re.sub(r"[^\d+]", "", phone),
        "is_dev": settings.CHAVE_ENV == "dev",
    }
