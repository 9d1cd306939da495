from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CounterConfig(AppConfig):
    name = "chave.counter"
    label = "counter"
    verbose_name = _("Counter (in-person services)")
