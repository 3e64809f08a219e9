"""The webhook's serving certificate: read from `tls.crt`/`tls.key` (a mounted Secret, reloaded when the
kubelet swaps it), or generated at start: a self-signed CA and a certificate it signs for the Service's DNS
names, whose CA then goes into the MutatingWebhookConfiguration's caBundle (`cabundle`).

The API server dials the webhook by its Service's name (`NAME.NAMESPACE.svc`) and checks the certificate's
subjectAltNames against it (the CN is ignored), so every name the Service answers to is in the SAN list.
Keys are ECDSA P-256: quick to generate at every start, and accepted by the API server's Go TLS stack.
Generated keys never leave the process's memory.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
CA_DAYS = 3650  # the CA lives as long as the process; a restart makes a new one
SERVING_DAYS = 3650
_SKEW = datetime.timedelta(hours=1)  # valid from an hour ago: clocks of nodes differ


class CertError(RuntimeError):
    """A certificate that cannot be read or used; the message names the file."""


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


def service_dns_names(service: str, namespace: str, cluster_domain: str = "cluster.local") -> list[str]:
    """Every name a client may dial a Service by; the API server uses `NAME.NAMESPACE.svc`."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.{cluster_domain}",
    ]


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def generate_ca(common_name: str, *, days: int = CA_DAYS) -> KeyPair:
    """A self-signed CA that can sign server certificates and nothing below them (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue_serving(
    ca: KeyPair, dns_names: Sequence[str], ip_addresses: Iterable[str] = (), *, days: int = SERVING_DAYS
) -> KeyPair:
    """A server certificate signed by `ca` for these names (the first is also the CN, for people)."""
    if not dns_names:
        raise CertError("a serving certificate needs at least one DNS name")
    ca_cert = ca.certificate
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    # The chain a client needs besides its trust root: just the leaf (the CA is the root it trusts).
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def load_into(context: ssl.SSLContext, pair: KeyPair) -> None:
    """Give `context` this certificate for new handshakes. `ssl` reads keys from files only, so the PEM goes
    through an in-memory file (memfd) where Linux has one: nothing is written to disk, and a read-only root
    filesystem is no obstacle."""
    if hasattr(os, "memfd_create"):
        fds = [os.memfd_create("gammaxds-webhook-cert"), os.memfd_create("gammaxds-webhook-key")]
        try:
            for fd, data in zip(fds, (pair.cert_pem, pair.key_pem), strict=True):
                os.write(fd, data)
            context.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory() as tmp:  # pragma: no cover - not Linux
        cert, key = Path(tmp, CERT_FILE), Path(tmp, KEY_FILE)
        cert.write_bytes(pair.cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(pair.key_pem)
        context.load_cert_chain(cert, key)


def server_context(pair: KeyPair) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 and later) serving `pair`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        load_into(context, pair)
    except ssl.SSLError as err:
        raise CertError(
            f"the certificate and key do not go together or are not PEM: {err.reason or err}"
        ) from None
    return context


class CertDir:
    """`tls.crt` and `tls.key` in a directory, as a mounted `kubernetes.io/tls` Secret gives them. `changed()`
    tells when the kubelet (or cert-manager, through it) has swapped them since the last `load()`."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._seen: tuple[tuple[int, int, int], ...] | None = None

    def _stamp(self) -> tuple[tuple[int, int, int], ...]:
        out = []
        for name in (CERT_FILE, KEY_FILE):
            with contextlib.suppress(OSError):
                st = (self.directory / name).stat()
                out.append((st.st_ino, st.st_mtime_ns, st.st_size))
                continue
            out.append((0, 0, 0))
        return tuple(out)

    def load(self) -> KeyPair:
        stamp = self._stamp()
        data = []
        for name in (CERT_FILE, KEY_FILE):
            path = self.directory / name
            try:
                data.append(path.read_bytes())
            except OSError as err:
                raise CertError(f"cannot read {path}: {err.strerror or err}") from None
        pair = KeyPair(*data)
        try:
            pair.certificate  # noqa: B018 - parse it: a bad file fails here, naming the file
        except ValueError as err:
            raise CertError(f"{self.directory / CERT_FILE}: not a PEM certificate: {err}") from None
        self._seen = stamp
        return pair

    def changed(self) -> bool:
        return self._seen is not None and self._stamp() != self._seen
