"""TLS is verified (CA and host name); insecure is an explicit opt-in; secrets stay out.

Curl codes seen (libcurl 8.23 + OpenSSL 3): a certificate from another CA -> tls:60 for
h1, h2 and h3; a host name the certificate does not name -> tls:60. (That the embedded
target binds loopback only is tested in tests/cluster/test_target.py.)
"""

from __future__ import annotations

import datetime
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rafale.actors.config import ResolveEntry
from rafale.actors.pacing import Schedule
from rafale.cluster.target import Target
from tests.faults import books_balance, error_kinds, plain_config, run_engine, target_config
from tests.faults.misbehaving import LOOPBACK, Misbehaving

RATE = 10
CERT_HOST = "rafale.test"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca(directory: Path) -> tuple[Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A throwaway self-signed CA: (PEM path, certificate, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("rafale throwaway test CA"))
        .issuer_name(_name("rafale throwaway test CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    path = directory / "throwaway-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


def make_server_context(directory: Path, ca: x509.Certificate,
                        ca_key: ec.EllipticCurvePrivateKey, host: str) -> ssl.SSLContext:
    """A server TLS context whose certificate, signed by ``ca``, names ``host`` only."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{host}.pem", directory / f"{host}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_pem_key(key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    context.set_alpn_protocols(["http/1.1"])
    return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """CA files that did not sign the embedded target's certificate, and a TLS server's."""
    directory = tmp_path_factory.mktemp("pki")
    throwaway, _, _ = make_ca(directory)
    with Target() as other:  # another Caddy: another internal CA
        other_ca = directory / "other-target-ca.pem"
        other_ca.write_bytes(other.ca_file.read_bytes())
    return {"throwaway": throwaway, "other target": other_ca}


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Misbehaving, Path]]:
    """A TLS server on 127.0.0.1 with a certificate for rafale.test; and its CA file."""
    ca_path, ca, ca_key = make_ca(tmp_path)
    with Misbehaving(tls=make_server_context(tmp_path, ca, ca_key, CERT_HOST)) as server:
        yield server, ca_path


@pytest.mark.parametrize("http", ["1.1", "2", "3"])
@pytest.mark.parametrize("wrong_ca", ["throwaway", "other target"])
def test_a_certificate_from_another_ca_fails_as_tls(
    target: Target, pki: dict[str, Path], wrong_ca: str, http: str
) -> None:
    config = target_config(target, http, cacert=str(pki[wrong_ca]),
                           schedule=Schedule.constant(RATE, 1.0))
    engine, windows, _ = run_engine(config)
    totals = books_balance(windows, engine, intended=RATE)
    assert totals["completed"] == 0
    assert totals["failed"] == RATE
    assert error_kinds(windows) == {"tls"}, totals["error"]
    assert totals["error"] == {"tls:60": RATE}  # CURLE_PEER_FAILED_VERIFICATION


@pytest.mark.parametrize("http", ["1.1", "2", "3"])
@pytest.mark.parametrize("cacert", ["none", "throwaway"])
def test_insecure_completes_without_the_right_ca(
    target: Target, pki: dict[str, Path], cacert: str, http: str
) -> None:
    config = target_config(target, http, insecure=True,
                           cacert=None if cacert == "none" else str(pki[cacert]),
                           schedule=Schedule.constant(RATE, 1.0))
    engine, windows, _ = run_engine(config)
    totals = books_balance(windows, engine, intended=RATE)
    assert totals["completed"] == RATE, totals["error"]
    assert totals["version"] == {http: RATE}


@pytest.mark.parametrize("http", ["1.1", "auto"])  # auto offers h2 by ALPN, gets http/1.1
@pytest.mark.parametrize(("host", "ok"), [(CERT_HOST, True), ("other.test", False)])
def test_the_host_name_is_verified(
    tls_server: tuple[Misbehaving, Path], host: str, ok: bool, http: str
) -> None:
    server, ca_path = tls_server
    config = plain_config(
        server.url("/", host=host), RATE, 1.0, http=http, cacert=str(ca_path),
        resolve=(ResolveEntry(host, server.port, (LOOPBACK,)),),
    )
    engine, windows, _ = run_engine(config)
    totals = books_balance(windows, engine, intended=RATE)
    if ok:  # the same CA verifies the right name: the failure below is the name alone
        assert totals["completed"] == RATE, totals["error"]
        assert totals["version"] == {"1.1": RATE}
    else:
        assert totals["completed"] == 0
        assert totals["error"] == {"tls:60": RATE}


def test_header_values_stay_out_of_windows_status_and_repr() -> None:
    secret, key = "Bearer s3cr3t-t0ken-value", "k3y-4f9d2e"
    with Misbehaving() as server:
        config = plain_config(server.url("/"), RATE, 1.0,
                              headers=(("Authorization", secret), ("X-Api-Key", key)))
        engine, windows, _ = run_engine(config)
        sent_headers = list(server.headers)
    books_balance(windows, engine, intended=RATE)
    # They were sent...
    assert len(sent_headers) == RATE
    assert all(h["authorization"] == secret and h["x-api-key"] == key for h in sent_headers)
    # ... and appear nowhere rafale reports or prints.
    for text in (json.dumps(windows), json.dumps(engine.status()), repr(config), str(config)):
        assert secret not in text and "s3cr3t" not in text and key not in text

