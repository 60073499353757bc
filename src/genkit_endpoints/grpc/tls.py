# SPDX-License-Identifier: Apache-2.0
"""Read and check the gRPC server's TLS files before gRPC sees them.

gRPC core accepts any bytes as a certificate or key and fails only at the first handshake,
with an error the client sees and the operator does not. So the files are read once and
checked with the standard library's OpenSSL (readable, PEM, unencrypted key, key belongs
to the certificate, CA bundle holds certificates): a bad file is one clear sentence at
start-up. No gRPC import, so app settings can call this while validating.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServerTls", "TlsConfigError", "load_server_tls"]

_CERT_BLOCK = b"-----BEGIN CERTIFICATE-----"
_KEY_BLOCK = b"PRIVATE KEY-----"
_ENCRYPTED = (b"ENCRYPTED PRIVATE KEY", b"Proc-Type: 4,ENCRYPTED")


class TlsConfigError(ValueError):
    """A TLS file is missing, unreadable or not what it should be; the message says which."""


@dataclass(frozen=True, repr=False)
class ServerTls:
    """PEM bytes for ``grpc.ssl_server_credentials``; ``client_ca`` set means mutual TLS."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None

    def __repr__(self) -> str:
        return f"ServerTls(mutual={self.mutual})"  # never the key


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"gRPC TLS {what} {path} cannot be read: {exc.strerror}") from None


class _EncryptedKey(Exception):
    pass


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for a passphrase.
    raise _EncryptedKey


def load_server_tls(cert: Path, key: Path, client_ca: Path | None = None) -> ServerTls:
    """Read and check the server certificate chain, its key and the optional client CA."""
    cert_pem = _read(cert, "certificate")
    key_pem = _read(key, "key")
    if _CERT_BLOCK not in cert_pem:
        raise TlsConfigError(f"gRPC TLS certificate {cert} holds no PEM certificate")
    if _KEY_BLOCK not in key_pem:
        raise TlsConfigError(f"gRPC TLS key {key} holds no PEM private key")
    if any(marker in key_pem for marker in _ENCRYPTED):
        raise TlsConfigError(f"gRPC TLS key {key} is encrypted; gRPC needs an unencrypted key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except _EncryptedKey:
        raise TlsConfigError(
            f"gRPC TLS key {key} is encrypted; gRPC needs an unencrypted key"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TlsConfigError(
                f"gRPC TLS key {key} does not belong to the certificate {cert}"
            ) from None
        why = f" ({exc.reason})" if exc.reason else ""  # OpenSSL's "PEM lib" says nothing
        raise TlsConfigError(
            f"gRPC TLS certificate {cert} or key {key} is not valid PEM{why}"
        ) from None
    ca_pem: bytes | None = None
    if client_ca is not None:
        ca_pem = _read(client_ca, "client CA")
        try:
            context.load_verify_locations(cadata=ca_pem.decode("ascii", "replace"))
        except ssl.SSLError:
            raise TlsConfigError(
                f"gRPC TLS client CA {client_ca} holds no valid PEM certificate"
            ) from None
    return ServerTls(cert_pem, key_pem, ca_pem)
