"""The box's own TLS certificate for `vigbox web --tls`: made once on the box, kept in
the data dir (key 0600), valid for its host name, `localhost` and its addresses."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.fsutil import atomic_write_bytes

# Apple devices refuse server certificates valid for more than 825 days, or without
# the serverAuth extended key usage, whatever profile is trusted.
VALID_DAYS = 825
RENEW_DAYS = 30
# The address the box's own Wi-Fi gives it (NetworkManager's shared mode).
HOTSPOT_ADDRESS = "10.42.0.1"


def ensure_certificate(cert: Path, key: Path) -> tuple[Path, Path]:
    """The certificate and key, made if either is missing or the certificate is about to
    expire (a renewed certificate must be trusted on the tablet again)."""
    if cert.is_file() and key.is_file() and not _expiring(cert):
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname() or "vigbox"
    names: list[x509.GeneralName] = [x509.DNSName(host), x509.DNSName("localhost"),
                                     x509.DNSName(f"{host}.local")]
    for address in ("127.0.0.1", HOTSPOT_ADDRESS):
        names.append(x509.IPAddress(ipaddress.ip_address(address)))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"vigbox {host}")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(private.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .sign(private, hashes.SHA256()))
    old = os.umask(0o177)
    try:
        atomic_write_bytes(key, private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    finally:
        os.umask(old)
    atomic_write_bytes(cert, certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _expiring(cert: Path) -> bool:
    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    except ValueError:
        return True  # unreadable: make a new one
    left = loaded.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return left < datetime.timedelta(days=RENEW_DAYS)
