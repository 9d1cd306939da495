from django.conf import settings


def site(request):
    """What every page may show: help contacts and whether this is a development instance."""
    return {
        "help_email": settings.CHAVE_HELP_EMAIL,
        "help_phone": settings.CHAVE_HELP_PHONE,
        "is_dev": settings.CHAVE_ENV == "dev",
    }
