from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ScmdConfig(AppConfig):
    """The SCMD SOAP signature service: a door into ``chave.signing`` for integrators of the
    Portuguese remote signature service (README: "Moving from CMD signing")."""

    name = "chave.scmd"
    label = "scmd"
    verbose_name = _("SCMD signature service")
