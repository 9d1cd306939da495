"""The path converter of URLs that name a relying party: ``<client_id:client_id>``.

A ``client_id`` is what :func:`chave.oidc.services.register_relying_party` makes ("chave-" and hex
digits): up to 64 URL-safe characters. Anything else in its place (a NUL character, which
PostgreSQL refuses in a query, or thousands of characters) is no page of ours: 404, as for an
unknown portal, before the database is asked.
"""

from django.urls import register_converter


class ClientIdConverter:
    regex = r"[A-Za-z0-9._~-]{1,64}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ClientIdConverter, "client_id")
