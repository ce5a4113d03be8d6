"""TLS for the WebSocket listener, with a certificate that can be replaced while serving.

asyncio keeps the one ``SSLContext`` a listener was created with, so that context never
changes: OpenSSL calls its ClientHello callback (``sni_callback``) for every handshake, with or
without SNI, and the callback moves the new connection onto the *current* context. A reload
builds and checks a whole new context before it becomes current, so a missing, unreadable or
mismatched file leaves the previous certificate in use; established connections keep theirs.

Encrypted private keys are refused (a reload must never stop at a password prompt).
"""

from __future__ import annotations

import ssl

__all__ = ["TlsCertificate"]


def _no_password() -> bytes:
    raise ValueError("encrypted private keys are not supported")


class TlsCertificate:
    """A certificate chain and its private key, loaded from files, reloadable.

    Args:
        cert_file: PEM certificate chain (the server's certificate first).
        key_file: PEM private key, unencrypted.

    Raises:
        ValueError: a file is missing, unreadable or invalid, or the key does not match the
            certificate (the message says which).
    """

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._current = self._load()
        self.context = self._current
        """The listener's context: hand it to ``create_server(ssl=...)``."""
        self.context.sni_callback = self._select

    def _load(self) -> ssl.SSLContext:
        for path in (self.cert_file, self.key_file):
            try:
                with open(path, "rb"):
                    pass  # OpenSSL's errors do not say which file is missing
            except OSError as exc:
                raise ValueError(f"cannot read {path}: {exc.strerror}") from None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.cert_file, self.key_file, password=_no_password)
        except ssl.SSLError as exc:
            raise ValueError(
                f"invalid TLS certificate {self.cert_file} or key {self.key_file}: "
                f"{exc.reason or exc}"
            ) from None
        except (OSError, ValueError) as exc:  # ValueError: from _no_password
            raise ValueError(f"cannot load {self.key_file}: {exc}") from None
        return context

    def _select(
        self, ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        if context is not self._current:
            ssl_object.context = self._current

    def reload(self) -> None:
        """Read both files again; new connections get the new certificate.

        Raises:
            ValueError: as for the constructor; the previous certificate stays in use.
        """
        self._current = self._load()
