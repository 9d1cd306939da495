"""The WSGI application, as a WSGI server imports it (``waitress-serve chave.wsgi:application``, the
web instances of ``deploy/systemd``). Loaded once per process, then settled before the first
request (``chave.ops.loaded.settle``: every view imported, what loading left frozen for the
garbage collector), as ``chave serve`` settles its own serving processes."""

import os

from django.core.wsgi import get_wsgi_application

from chave.ops.loaded import settle

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chave.settings")
application = get_wsgi_application()
settle()
