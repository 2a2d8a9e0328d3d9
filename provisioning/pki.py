"""The deployment's certificate authority and one server certificate per gateway host."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provisioning.deployment import write_private, write_public
from provisioning.signing import to_pem

CA_YEARS = 20
SERVER_YEARS = 10


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def self_signed_ca(
    key: ec.EllipticCurvePrivateKey,
    name: str,
    days: int,
    path_length: int | None,
    extensions: Iterable[tuple[x509.ExtensionType, bool]] = (),
) -> x509.Certificate:
    """A CA certificate that ``key`` signs itself: subject and issuer CN ``name``, valid from a
    day ago for ``days`` days, BasicConstraints with ``path_length`` (critical), then each of
    ``extensions`` (with whether it is critical). The deployment's CA and the tests' CA."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(key, hashes.SHA256())


def ensure_ca(pki_dir: Path, name: str = "klupa deployment CA") -> tuple[Path, Path]:
    """Create ``ca.crt`` and ``ca.key`` (0600) once; later calls keep them."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    crt, key_path = pki_dir / "ca.crt", pki_dir / "ca.key"
    if crt.is_file() and key_path.is_file():
        return crt, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    key_id = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = self_signed_ca(key, name, 365 * CA_YEARS, 0, [(usage, True), (key_id, False)])
    write_private(key_path, to_pem(key))
    write_public(crt, _cert_pem(cert))
    return crt, key_path


def issue_server_cert(ca_crt: Path, ca_key: Path, host: str, out_dir: Path) -> tuple[Path, Path]:
    """Write ``server.crt`` / ``server.key`` (0600) for ``host`` unless a valid pair exists."""
    out_dir.mkdir(parents=True, exist_ok=True)
    crt_path, key_path = out_dir / "server.crt", out_dir / "server.key"
    ca_cert = x509.load_pem_x509_certificate(ca_crt.read_bytes())
    if crt_path.is_file() and key_path.is_file() and server_cert_ok(crt_path, ca_crt, host):
        return crt_path, key_path
    loaded = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(host)]
    try:
        names = [x509.IPAddress(ipaddress.ip_address(host))]
    except ValueError:
        pass
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365 * SERVER_YEARS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(loaded, hashes.SHA256())
    )
    write_private(key_path, to_pem(key))
    write_public(crt_path, _cert_pem(cert))
    return crt_path, key_path


def server_cert_ok(crt_path: Path, ca_crt: Path, host: str) -> bool:
    """The certificate names ``host``, is signed by the CA and is valid now."""
    try:
        cert = x509.load_pem_x509_certificate(crt_path.read_bytes())
        ca = x509.load_pem_x509_certificate(ca_crt.read_bytes())
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        hosts = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        hosts += [str(n) for n in san.get_values_for_type(x509.IPAddress)]
        now = dt.datetime.now(dt.UTC)
        return host in hosts and cert.not_valid_before_utc <= now < cert.not_valid_after_utc
    except (ValueError, x509.ExtensionNotFound, TypeError):
        return False
    except Exception:  # signature errors come as several types across versions
        return False
