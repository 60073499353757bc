# SPDX-License-Identifier: Apache-2.0
"""gRPC TLS and mutual TLS with certificates made here (``cryptography``).

The negative matrix: a plaintext client, no client certificate, a certificate from another
CA and an expired one are all refused in the handshake — no RPC runs — while a valid
client certificate is served and its subject is the principal.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import ValidationError

from endpoints_hello.generated import genkit_sample_pb2 as pb
from endpoints_hello.generated import genkit_sample_pb2_grpc as pb_grpc
from genkit_endpoints import Settings
from genkit_endpoints.grpc.config import GrpcConfig
from genkit_endpoints.grpc.tls import TlsConfigError, load_server_tls
from genkit_endpoints.security.keys import ApiKeyring
from tests.unit.grpc_secure import ANONYMOUS, secured

pytestmark = pytest.mark.timeout(30)

ORG = "genkit-endpoints tests"
API_KEY = "svc-key-0123456789abcdef"

# --- certificates ----------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _issue(
    common_name: str,
    issuer: Issued | None = None,
    *,
    server: bool = False,
    expired: bool = False,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    if expired:
        not_before, not_after = now - datetime.timedelta(days=10), now - datetime.timedelta(days=1)
    else:
        not_before, not_after = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.cert.subject if issuer else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:  # a CA
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    signer = issuer.key if issuer else key
    return Issued(key, builder.sign(signer, hashes.SHA256()))


@dataclass
class Pki:
    ca: Issued
    server: Issued
    client: Issued
    other_ca_client: Issued
    expired_client: Issued
    files: dict[str, Path]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = _issue("Test CA")
    other_ca = _issue("Other CA")
    pki = Pki(
        ca=ca,
        server=_issue("localhost", ca, server=True),
        client=_issue("alice", ca),
        other_ca_client=_issue("alice", other_ca),
        expired_client=_issue("alice", ca, expired=True),
        files={},
    )
    tmp = tmp_path_factory.mktemp("pki")
    contents = {
        "ca": pki.ca.cert_pem,
        "server_cert": pki.server.cert_pem,
        "server_key": pki.server.key_pem,
        "client_key": pki.client.key_pem,  # a key that does not belong to the server cert
    }
    for name, data in contents.items():
        path = tmp / f"{name}.pem"
        path.write_bytes(data)
        pki.files[name] = path
    return pki


def tls_cfg(pki: Pki, *, mutual: bool) -> dict[str, Any]:
    return {
        "tls_cert": pki.files["server_cert"],
        "tls_key": pki.files["server_key"],
        "tls_client_ca": pki.files["ca"] if mutual else None,
    }


def client_credentials(pki: Pki, client: Issued | None = None) -> grpc.ChannelCredentials:
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=pki.ca.cert_pem)
    return grpc.ssl_channel_credentials(pki.ca.cert_pem, client.key_pem, client.cert_pem)


async def tell_joke(
    target: str, credentials: grpc.ChannelCredentials | None, **kwargs: Any
) -> pb.JokeResponse:
    channel = (
        grpc.aio.insecure_channel(target)
        if credentials is None
        else grpc.aio.secure_channel(target, credentials)
    )
    async with channel:
        reply: pb.JokeResponse = await pb_grpc.GenkitServiceStub(channel).TellJoke(
            pb.JokeRequest(username="mallory"), timeout=5, **kwargs
        )
        return reply


# --- TLS --------------------------------------------------------------------------------


async def test_tls_server_serves_a_tls_client(pki: Pki) -> None:
    async with secured(**tls_cfg(pki, mutual=False)) as s:
        reply = await tell_joke(s.target, client_credentials(pki))
    assert reply.username == ANONYMOUS  # server-only TLS authenticates the server, not you
    assert s.server.auth == "none"


async def test_tls_server_refuses_a_plaintext_client(pki: Pki) -> None:
    async with secured(**tls_cfg(pki, mutual=False)) as s:
        with structlog.testing.capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as info:
            await tell_joke(s.target, None)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not [e for e in logs if e["event"] == "grpc_request"]  # no RPC ran


async def test_tls_with_api_keys_still_needs_the_key(pki: Pki) -> None:
    keyring = ApiKeyring.parse(f"svc:{API_KEY}")
    async with secured(api_keys=keyring, **tls_cfg(pki, mutual=False)) as s:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await tell_joke(s.target, client_credentials(pki))
        reply = await tell_joke(
            s.target, client_credentials(pki), metadata=(("x-api-key", API_KEY),)
        )
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reply.username == "svc"


# --- mutual TLS ------------------------------------------------------------------------


async def test_mtls_client_certificate_subject_is_the_principal(pki: Pki) -> None:
    async with secured(**tls_cfg(pki, mutual=True)) as s:
        with structlog.testing.capture_logs() as logs:
            reply = await tell_joke(s.target, client_credentials(pki, pki.client))
    subject = f"CN=alice,O={ORG}"
    assert reply.username == subject
    assert reply.joke == "mtls"
    (event,) = [e for e in logs if e["event"] == "grpc_request"]
    assert event["principal"] == subject
    assert s.server.auth == "mtls"


@pytest.mark.parametrize("which", ["none", "other_ca", "expired"])
async def test_mtls_refuses_missing_foreign_or_expired_client_certificates(
    pki: Pki, which: str
) -> None:
    client = {"none": None, "other_ca": pki.other_ca_client, "expired": pki.expired_client}[which]
    async with secured(**tls_cfg(pki, mutual=True)) as s:
        with structlog.testing.capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as info:
            await tell_joke(s.target, client_credentials(pki, client))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # the handshake failed
    assert not [e for e in logs if e["event"] == "grpc_request"]  # no RPC ran


async def test_mtls_refuses_a_plaintext_client(pki: Pki) -> None:
    async with secured(**tls_cfg(pki, mutual=True)) as s:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await tell_joke(s.target, None)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_with_mtls_a_verified_certificate_needs_no_api_key(pki: Pki) -> None:
    """The documented choice: the certificate authenticates; metadata keys are not consulted."""
    keyring = ApiKeyring.parse(f"svc:{API_KEY}")
    async with secured(api_keys=keyring, **tls_cfg(pki, mutual=True)) as s:
        bare = await tell_joke(s.target, client_credentials(pki, pki.client))
        wrong_key = await tell_joke(
            s.target,
            client_credentials(pki, pki.client),
            metadata=(("x-api-key", "not-a-key-0123456789"),),
        )
    assert bare.username == wrong_key.username == f"CN=alice,O={ORG}"


async def test_start_up_log_says_which_transport(pki: Pki) -> None:
    with structlog.testing.capture_logs() as logs:
        async with secured(**tls_cfg(pki, mutual=True)):
            pass
        async with secured():
            pass
    started = [e for e in logs if e["event"] == "grpc_server_started"]
    assert [(e["transport"], e["authentication"]) for e in started] == [
        ("mtls", "mtls"),
        ("plaintext", "none"),
    ]


# --- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tls_cert": Path("c.pem")}, "both a certificate and its key"),
        ({"tls_key": Path("k.pem")}, "both a certificate and its key"),
        ({"tls_client_ca": Path("ca.pem")}, "needs a server certificate"),
    ],
)
def test_incomplete_tls_config_is_refused_at_construction(
    fields: dict[str, Path], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        GrpcConfig(**fields)  # type: ignore[arg-type]


def test_transport_follows_the_tls_fields(pki: Pki) -> None:
    assert GrpcConfig().transport == "plaintext"
    assert GrpcConfig(**tls_cfg(pki, mutual=False)).transport == "tls"
    assert GrpcConfig(**tls_cfg(pki, mutual=True)).transport == "mtls"


def test_bad_tls_files_are_one_clear_sentence(pki: Pki, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a pem file")
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        pki.server.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    cert, key, ca = pki.files["server_cert"], pki.files["server_key"], pki.files["ca"]
    cases = [
        ((tmp_path / "missing.pem", key, None), "certificate .*missing.pem cannot be read"),
        ((cert, tmp_path / "missing.pem", None), "key .*missing.pem cannot be read"),
        ((junk, key, None), "holds no PEM certificate"),
        ((cert, junk, None), "holds no PEM private key"),
        ((cert, encrypted, None), "is encrypted"),
        ((cert, pki.files["client_key"], None), "does not belong to the certificate"),
        ((broken, key, None), "is not valid PEM"),
        ((cert, key, junk), "client CA .*holds no valid PEM certificate"),
        ((cert, key, tmp_path / "missing.pem"), "client CA .*cannot be read"),
    ]
    for (c, k, client_ca), message in cases:
        with pytest.raises(TlsConfigError, match=message) as info:
            load_server_tls(c, k, client_ca)
        assert "\n" not in str(info.value)
        assert "PRIVATE KEY" not in str(info.value)
    assert load_server_tls(cert, key, ca).mutual
    assert "PRIVATE" not in repr(load_server_tls(cert, key))


async def test_bad_tls_file_fails_server_construction(pki: Pki, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("nope")
    with pytest.raises(TlsConfigError, match="holds no PEM certificate"):
        async with secured(tls_cert=junk, tls_key=pki.files["server_key"]):
            pass


def test_settings_build_the_tls_and_limit_config(pki: Pki) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        grpc_tls_cert=pki.files["server_cert"],
        grpc_tls_key=pki.files["server_key"],
        grpc_tls_client_ca=pki.files["ca"],
        grpc_max_concurrent_rpcs=42,
        grpc_max_metadata_size=8192,
    )
    cfg = settings.grpc_config()
    assert cfg.transport == "mtls"
    assert cfg.tls_client_ca == pki.files["ca"]
    assert cfg.max_concurrent_rpcs == 42
    assert dict(cfg.channel_options())["grpc.max_metadata_size"] == 8192


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"grpc_tls_cert": "server_cert"}, "both a certificate and its key"),
        ({"grpc_tls_cert": "server_cert", "grpc_tls_key": "client_key"}, "does not belong"),
        ({"grpc_tls_cert": "missing", "grpc_tls_key": "server_key"}, "cannot be read"),
    ],
)
def test_settings_refuse_bad_tls_files_at_start_up(
    pki: Pki, fields: dict[str, str], message: str
) -> None:
    paths = {k: pki.files.get(v, Path("/nonexistent/missing.pem")) for k, v in fields.items()}
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, **paths)  # type: ignore[call-arg]


def test_settings_ignore_tls_files_when_grpc_is_off(pki: Pki) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        grpc_enabled=False,
        grpc_tls_cert=pki.files["server_cert"],
    )
    assert settings.grpc.grpc_tls_cert == pki.files["server_cert"]
