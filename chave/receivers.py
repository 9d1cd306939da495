"""Signal receivers connected at start-up, imported when a signal is first sent.

Each app's ``ready()`` connects its receivers. Importing their modules there would load, in every
process, what they import: the signing services alone bring pyHanko, aiohttp and asn1crypto
(about 30 MB). The ``chave serve`` supervisor and the delivery worker never send those signals, so
they would carry that memory for nothing; a web process loads it when it first needs it.
"""

from __future__ import annotations

from importlib import import_module


def connect(signal, path: str, *, dispatch_uid: str, **kwargs) -> None:
    """Connect ``module.function`` (``path``) to ``signal``; the module is imported at the first send."""
    module, name = path.rsplit(".", 1)

    def receive(sender, **signal_kwargs):
        return getattr(import_module(module), name)(sender, **signal_kwargs)

    receive.__qualname__ = receive.__name__ = path
    # The closure is the only reference to the receiver: held strongly, or it would be collected.
    signal.connect(receive, weak=False, dispatch_uid=dispatch_uid, **kwargs)
