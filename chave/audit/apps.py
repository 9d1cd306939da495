from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "chave.audit"
    label = "audit"
    verbose_name = "Audit"
