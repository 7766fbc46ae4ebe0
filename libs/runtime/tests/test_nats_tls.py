"""TLS to NATS as an option: a server certificate from a CA made here, verified by the client."""

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nats.aio.client import Client
from nats.errors import Error as NatsError

from eh_devtools.nats_server import NatsServer
from eh_runtime.connection import NatsConnection, client_tls_context
from eh_runtime.settings import NatsSettings

pytestmark = [pytest.mark.nats, pytest.mark.own_server]


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def make_ca_and_server_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A self-signed CA, and a certificate it signs for 127.0.0.1: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "event-handler test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nats")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path = directory / "server.pem"
    cert_path.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    return ca_path, cert_path, _write_key(server_key, directory / "server-key.pem")


async def test_services_connect_over_tls_and_verify_the_server(tmp_path):
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    with NatsServer(tmp_path / "js", tls=(cert, key)) as server:
        assert server.url.startswith("tls://")
        settings = NatsSettings(url=server.url_for("collector"), tls_ca=str(ca), reconnect_wait=0.05)
        connection = NatsConnection(settings, "collector")
        connection.start()
        try:
            await connection.wait_ready(timeout=10)
            assert connection.is_connected
        finally:
            await connection.close()
        # Without the CA the server's certificate is not trusted: no connection.
        errors: list[Exception] = []

        async def on_error(error: Exception) -> None:
            errors.append(error)

        stranger = Client()
        try:
            with pytest.raises((ssl.SSLError, NatsError, TimeoutError)):
                await asyncio.wait_for(
                    stranger.connect(
                        server.url_for("collector"),
                        tls=client_tls_context(NatsSettings()),
                        allow_reconnect=False,
                        max_reconnect_attempts=0,
                        connect_timeout=2,
                        error_cb=on_error,
                    ),
                    5,
                )
            assert not stranger.is_connected
            assert any(isinstance(e, ssl.SSLCertVerificationError) for e in errors), errors
        finally:
            # nats-py's close() waits forever after a failed TLS handshake; nothing is open then.
            if stranger.is_connected:
                await stranger.close()
