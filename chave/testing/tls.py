"""Chave served over HTTPS in tests, as it is in production behind its TLS front end.

:class:`TlsLiveServer` runs the project's WSGI application in a thread of the test process
(Django's live-server thread, so it shares the test database) on a TLS socket with a
self-signed certificate for ``host_name``. Requests reach Django with ``wsgi.url_scheme``
``https``, so secure cookies, CSRF origin checks and ``request.is_secure()`` behave as in
production. Browsers are pointed at it with chromium's ``--host-resolver-rules`` (the host name
maps to 127.0.0.1) and accept the certificate with ``ignore_https_errors``.
"""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.servers.basehttp import ThreadedWSGIServer
from django.test.testcases import LiveServerThread, QuietWSGIRequestHandler


def self_signed(host_name: str, directory: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files of a fresh self-signed server certificate for ``host_name``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_name)])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host_name)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


class _TlsWSGIServer(ThreadedWSGIServer):
    """Django's threaded test server; each connection is wrapped in TLS in its own thread, so a
    slow handshake never holds up the accepting loop."""

    def __init__(self, *args, ssl_context: ssl.SSLContext, **kwargs):
        self.ssl_context = ssl_context
        super().__init__(*args, **kwargs)

    def setup_environ(self):
        super().setup_environ()
        self.base_environ["HTTPS"] = "on"  # wsgiref then sets wsgi.url_scheme to https

    def finish_request(self, request, client_address):
        with self.ssl_context.wrap_socket(request, server_side=True) as secured:
            super().finish_request(secured, client_address)

    def handle_error(self, request, client_address):
        import sys

        if isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError)):
            return  # a browser that hung up or refused the test certificate before trusting it
        super().handle_error(request, client_address)

    def shutdown_request(self, request):
        try:
            request.close()
        except OSError:
            pass


class _TlsLiveServerThread(LiveServerThread):
    def __init__(self, *args, ssl_context: ssl.SSLContext, **kwargs):
        self.ssl_context = ssl_context
        super().__init__(*args, **kwargs)

    def _create_server(self, connections_override=None):
        return _TlsWSGIServer((self.host, self.port), QuietWSGIRequestHandler, allow_reuse_address=False,
                              connections_override=connections_override, ssl_context=self.ssl_context)


class TlsLiveServer:
    """``https://<host_name>:<port>`` served from 127.0.0.1 by this process; ``stop()`` ends it."""

    def __init__(self, host_name: str, directory: Path):
        from django.contrib.staticfiles.handlers import StaticFilesHandler
        from django.db import connections

        cert_file, key_file = self_signed(host_name, directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        shared = {c.alias: c for c in connections.all() if c.vendor == "sqlite" and c.is_in_memory_db()}
        self.host_name = host_name
        self.thread = _TlsLiveServerThread("127.0.0.1", StaticFilesHandler, connections_override=shared,
                                           ssl_context=context)
        self.thread.daemon = True
        for connection in shared.values():
            connection.inc_thread_sharing()
        self.thread.start()
        self.thread.is_ready.wait()
        if self.thread.error:
            self.stop()
            raise self.thread.error

    @property
    def port(self) -> int:
        return self.thread.port

    @property
    def url(self) -> str:
        return f"https://{self.host_name}:{self.port}"

    def stop(self) -> None:
        self.thread.terminate()
        for connection in self.thread.connections_override.values():
            connection.dec_thread_sharing()
