"""The browser of the in-process benches: Django's test client, less what only tests need.

A server loads Django's middleware once and then only hands requests over. Django's test client
builds a handler of its own for every client (the benches make one per citizen, a fresh browser
each) and, around every request, connects and disconnects signal receivers that keep rendered
templates and exceptions for assertions. Those costs are the test client's, not Chave's, so here
every client shares one handler and a request is only the handler's call. Forms are posted as
``application/x-www-form-urlencoded``, as browsers post them (the test client's default is
multipart, which costs both ends more).
"""

from __future__ import annotations

import functools
from urllib.parse import urlencode

from django.test import Client
from django.test.client import ClientHandler

FORM = "application/x-www-form-urlencoded"


class BenchClient(Client):
    _shared: ClientHandler | None = None

    def __init__(self, **defaults):
        super().__init__(**defaults)
        if BenchClient._shared is None:
            BenchClient._shared = self.handler
        self.handler = BenchClient._shared

    def post(self, path, data=None, content_type=FORM, **extra):
        if content_type == FORM and isinstance(data, dict):
            data = urlencode(data, doseq=True)
        return super().post(path, data, content_type=content_type, **extra)

    def request(self, **request):
        response = self.handler(self._base_environ(**request))
        response.json = functools.partial(self._parse_json, response)
        if response.cookies:
            self.cookies.update(response.cookies)
        return response
