"""The targets of a run (``--host``: ``host:port``, a port pool ``host:FIRST-LAST``, or a URL
whose scheme names its protocol in the registry) and the TLS settings that go with them
(``--tls``, ``--ca``, ``--insecure``, and the TLS schemes). Each problem is one
:class:`ConfigError` line naming the flag."""

from __future__ import annotations

import contextlib

from harness import protocols
from harness.core.plan import Target, Tls
from harness.core.specs import ConfigError, cut, flag_name

MAX_CA_BYTES = 1 << 20  # a --ca file (PEM: one or more CA certificates)
_HOST_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")


def parse_targets(text: str) -> list[Target]:
    """One ``--host`` item: a target, or a destination pool ``host:FIRST-LAST`` (raw TCP),
    one target per port."""
    from harness.core.pools import port_pool
    host, sep, ports = text.strip().rpartition(":")
    if "://" in text or not sep or "-" not in ports:
        return [parse_target(text)]
    try:
        pool = port_pool(ports) or ()
    except ValueError as exc:
        raise ConfigError(f"--host: {cut(text)!r}: {exc}") from None
    return [parse_target(f"{host}:{p}") for p in pool]


def parse_target(text: str) -> Target:
    """``host:port`` or ``[v6]:port`` (raw TCP), or an ``http(s)://host[:port][/path]`` URL
    (HTTP/1.1, over TLS for https; port 80 or 443 by default); the port must be 1-65535."""
    text = text.strip()
    if "://" in text:
        return _parse_url(text)
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep or ":" not in host:
            raise ConfigError(f"--host: {cut(text)!r}: expected [IPv6 address]:port")
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise ConfigError(f"--host: {text!r}: expected host:port")
    try:
        p = int(port)
    except ValueError:
        raise ConfigError(f"--host: {text!r}: port {port!r} is not a number") from None
    if not 1 <= p <= 65535:
        raise ConfigError(f"--host: {text!r}: port {p} out of range 1-65535")
    _check_host_name(host, text)
    return Target(host, p)


def _parse_url(text: str) -> Target:
    """An ``http://`` or ``https://`` URL: host, port (80 or 443 unless given), path ("/"
    unless given)."""
    from urllib.parse import urlsplit
    scheme = text.partition("://")[0].lower()
    if scheme == "redis":
        return _redis_url(text)
    if protocols.by_scheme(scheme) is None:
        raise ConfigError(f"--host: {cut(text)!r}: unknown URL scheme {cut(scheme)!r} "
                          "(expected http://host:port/path, ws://host:port/path, or host:port "
                          "for raw TCP)")
    try:
        url = urlsplit(text)
        port = url.port if url.port is not None else protocols.SCHEMES[scheme].schemes[scheme]
    except ValueError as exc:
        raise ConfigError(f"--host: {cut(text)!r}: not a valid URL ({exc})") from None
    host = url.hostname or ""
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    if not host or url.username is not None or url.fragment or not path.isprintable() \
            or " " in path:
        raise ConfigError(f"--host: {cut(text)!r}: not a valid URL "
                          f"(expected {scheme}://host[:port][/path])")
    if port == 0:
        raise ConfigError(f"--host: {text!r}: port 0 out of range 1-65535")
    _check_host_name(host, text)
    return Target(host, port, scheme, path)


def _redis_url(text: str) -> Target:
    """``redis://host[:port]`` (port 6379 unless given): the redis workload's target. No
    user, password or database: harness sends no AUTH or SELECT."""
    from urllib.parse import urlsplit
    try:
        url = urlsplit(text)
        port = protocols.by_name("redis").default_port("redis") if url.port is None \
            else url.port
    except ValueError as exc:
        raise ConfigError(f"--host: {cut(text)!r}: not a valid URL ({exc})") from None
    host = url.hostname or ""
    if not host or url.username is not None or url.path not in ("", "/") or url.query \
            or url.fragment:
        raise ConfigError(f"--host: {cut(text)!r}: expected redis://host[:port] (no user, "
                          "password or database: harness sends no AUTH or SELECT)")
    if port == 0:
        raise ConfigError(f"--host: {text!r}: port 0 out of range 1-65535")
    _check_host_name(host, text)
    return Target(host, port, "redis")


def _check_host_name(host: str, text: str) -> None:
    """An IP address, or a name the resolver can be asked about: labels of 1-63 characters,
    253 in all (an internationalised name is checked in its IDNA form). A name that is well
    formed but does not resolve is the target's problem (exit 3), not a usage error."""
    import ipaddress
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host.partition("%")[0])
        return
    if ":" in host:
        raise ConfigError(f"--host: {text!r}: {host!r} is not an IPv6 address")
    try:
        ascii_name = host.encode("idna")
    except UnicodeError:
        ascii_name = b""
    labels = ascii_name.rstrip(b".").split(b".")
    if (not ascii_name or len(ascii_name) > 253 or not set(ascii_name) <= _HOST_CHARS
            or any(not 0 < len(label) <= 63 for label in labels)):
        raise ConfigError(f"--host: {cut(text)!r}: not a valid host name (labels of 1-63 "
                          "letters, digits or hyphens, 253 characters in all)")


def tls_settings(run: dict, targets: tuple[Target, ...]) -> Tls | None:
    """TLS for an https:// target or ``--tls`` with host:port, with ``--ca FILE`` read and
    checked here, or ``--insecure``; None for plain TCP."""
    schemes = {t.scheme for t in targets}
    want = bool(run.get("tls")) or bool(protocols.TLS_SCHEMES & schemes)
    ca, insecure = str(run.get("ca") or ""), bool(run.get("insecure"))
    if {"http", "https"} <= schemes:
        raise ConfigError("--host: http:// and https:// targets cannot be mixed")
    if {"ws", "wss"} <= schemes:
        raise ConfigError("--host: ws:// and wss:// targets cannot be mixed")
    if run.get("tls") and "ws" in schemes:
        raise ConfigError(f"{flag_name(run, 'tls')}: a ws:// target is plain WebSocket; give "
                          "wss://host:port/ for WebSocket over TLS (use wss://)")
    if run.get("tls") and "http" in schemes:
        raise ConfigError(f"{flag_name(run, 'tls')}: an http:// target is plain HTTP; give "
                          "https://host:port/ for HTTP over TLS")
    if ca and insecure:
        raise ConfigError(f"{flag_name(run, 'ca')} and {flag_name(run, 'insecure')} exclude "
                          "each other: verify against a CA file, or do not verify")
    if not want:
        if ca or insecure:
            name = flag_name(run, "ca" if ca else "insecure")
            raise ConfigError(f"{name}: only for TLS targets (https://, wss:// or --tls)")
        return None
    if not targets:
        raise ConfigError(f"{flag_name(run, 'tls')}: needs a --host target (the embedded "
                          "server speaks plain TCP)")
    return Tls(ca_pem=_read_ca(ca, flag_name(run, "ca")) if ca else "", insecure=insecure)


def _read_ca(path: str, name: str) -> str:
    """The text of a PEM CA file that OpenSSL accepts as trust anchors."""
    import ssl
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CA_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_CA_BYTES:
        raise ConfigError(f"{name}: {path!r} is over {MAX_CA_BYTES:,} bytes: not a CA file")
    text = data.decode("latin-1")
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(f"{name}: {path!r} holds no PEM certificate "
                          "(-----BEGIN CERTIFICATE-----)")
    try:
        ssl.create_default_context(cadata=text)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"{name}: {path!r}: not a valid PEM certificate "
                          f"({getattr(exc, 'reason', None) or exc})") from None
    return text

