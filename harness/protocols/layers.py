"""The settings of the layers any protocol's transport takes: TLS (harness.protocols.tls is
the layer itself; this module is its declaration, light to import: no ssl)."""

from __future__ import annotations

from harness.core.settings import BOOL, STR, Setting

TLS = (
    Setting("--tls", "Target", "wrap raw TCP (host:port) in TLS; https:// URLs always use "
            "TLS", BOOL, False),
    Setting("--insecure", "Target", "TLS: do not verify the server's certificate", BOOL,
            False),
    Setting("--ca", "Target", "TLS: verify the server's certificate against this CA file "
            "(PEM) instead of the system store", STR, ""),
)
LAYERS: dict[str, tuple[Setting, ...]] = {"tls": TLS}
