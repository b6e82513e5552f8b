"""Certificates for the TLS tests and benchmarks, made with the ``openssl`` command line (no
Python dependency): a CA and a server certificate it signs for ``localhost`` and
``127.0.0.1``; a second CA that signed nothing here; a self-signed server certificate; and
a certificate, signed by the CA, for another host name only. EC P-256 keys, valid 2 days."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Certs", "available", "make"]

SAN = "subjectAltName=DNS:localhost,IP:127.0.0.1"


@dataclass(frozen=True, slots=True)
class Certs:
    """PEM files: ``ca`` signed ``cert`` (key ``key``, for localhost and 127.0.0.1) and
    ``other_host`` (key ``key``, for other.example only); ``other_ca`` signed nothing;
    ``self_signed`` (key ``key``) names localhost and 127.0.0.1 but no CA signed it."""

    ca: Path
    other_ca: Path
    cert: Path
    key: Path
    self_signed: Path
    other_host: Path


def available() -> bool:
    return shutil.which("openssl") is not None


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True,
                   timeout=30, stdin=subprocess.DEVNULL)


def _ca(d: Path, name: str) -> tuple[Path, Path]:
    key, pem = d / f"{name}.key", d / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", pem, "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return pem, key


def _signed(d: Path, name: str, san: str, ca: Path, ca_key: Path, key: Path) -> Path:
    csr, pem, ext = d / f"{name}.csr", d / f"{name}.pem", d / f"{name}.ext"
    ext.write_text(f"{san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                   "extendedKeyUsage=serverAuth\n")
    _openssl("req", "-new", "-key", key, "-out", csr, "-subj", "/CN=harness test server",
             cwd=d)
    _openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
             "-out", pem, "-days", "2", "-extfile", ext, cwd=d)
    return pem


def make(folder: Path) -> Certs:
    """Every certificate of :class:`Certs`, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca(folder, "ca")
    other_ca, _ = _ca(folder, "other-ca")
    key = folder / "server.key"
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-out", key, cwd=folder)
    cert = _signed(folder, "server", SAN, ca, ca_key, key)
    other_host = _signed(folder, "other-host", "subjectAltName=DNS:other.example", ca,
                         ca_key, key)
    self_signed = folder / "self-signed.pem"
    _openssl("req", "-x509", "-new", "-key", key, "-out", self_signed, "-days", "2", "-subj",
             "/CN=localhost", "-addext", SAN, cwd=folder)
    return Certs(ca=ca, other_ca=other_ca, cert=cert, key=key, self_signed=self_signed,
                 other_host=other_host)
