"""The Demo Portal: a small portal, separate from Chave, that logs citizens in with it.

It is what a Public Administration portal integrating with Chave writes, in a few hundred lines
of standard-library Python plus ``joserfc``: OpenID Connect discovery, the authorization code
flow with PKCE (S256), ``state`` and ``nonce``, ``private_key_jwt`` client authentication with its
own RSA key (published at ``/jwks.json``), ID token validation against Chave's JWKS, userinfo,
RP-initiated and back-channel logout. It imports nothing from Chave or Django.

``saml_app.DemoSamlPortal`` is its SAML 2.0 sibling, a portal built the way autenticacao.gov's
portals are (on pysaml2), sharing the pages' frame and words: ``chave demo_saml_portal``,
``chave serve --with-demo-saml-portal``, or ``python -m demo_portal --saml --issuer URL``.

Run it with ``chave demo_portal`` (after ``chave seed_demo`` registered it), with
``chave serve --with-demo-portal`` (what ``make run`` does), or on its own:
``python -m demo_portal --issuer URL --client-id ID`` from ``examples/``.
"""

from .app import Config, DemoPortal, endpoints

__all__ = ["Config", "DemoPortal", "endpoints", "serve"]


def serve(config, *, host: str = "127.0.0.1", port: int = 8001, threads: int = 4, ready=None) -> None:
    """Serve the portal of ``config`` (a :class:`Config`, or a ``saml_app.SamlConfig`` for the SAML
    portal) with waitress until SIGINT or SIGTERM (or until the server is closed).

    ``ready`` is called with the listening port once the socket is bound. Raises ``OSError``
    when the address cannot be bound.
    """
    import signal
    import threading

    import waitress

    if isinstance(config, Config):
        application = DemoPortal(config)
    else:
        from .saml_app import DemoSamlPortal

        application = DemoSamlPortal(config)
    server = waitress.create_server(application, host=host, port=port, threads=threads, ident="demo-portal")

    def stop(signum, frame):
        raise SystemExit(0)

    in_main_thread = threading.current_thread() is threading.main_thread()  # signals go to the main thread only
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)} if in_main_thread else {}
    try:
        if ready is not None:
            ready(server.effective_port)
        server.run()
    except SystemExit:
        pass
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
