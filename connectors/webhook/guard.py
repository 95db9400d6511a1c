"""SSRF guard for outbound webhooks to merchant-supplied URLs.

``resolve`` checks the URL (https only unless allowed), resolves the host once and refuses it when
*any* address it resolves to is loopback, private, link-local, carrier-grade NAT, multicast,
reserved or a cloud metadata endpoint (IPv4-mapped, NAT64, 6to4 and Teredo IPv6 forms are
unwrapped first). The caller then connects to exactly the address checked (``PinnedAdapter``), so
a second DNS answer cannot point the request somewhere else (DNS rebinding). Redirects are never
followed. Hosts in the allow-list (tests, private deployments) skip the address check only.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter

from hub.kernel.errors import PermanentError, RetriableError

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
    "fd00:ec2::254",    # AWS IPv6 (Nitro)
    "100.100.100.200",  # Alibaba Cloud
    "169.254.170.2",    # AWS ECS task metadata
))
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class Target:
    """A checked destination: connect to ``address``, present ``host`` (Host header, SNI, certificate)."""

    url: str
    scheme: str
    host: str
    port: int
    address: str

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def blocked_reason(ip: IP) -> str | None:
    """Why an address must not be called, or None when it is a public unicast address."""
    if ip in METADATA:
        return "cloud metadata"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is None and ip in NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            return blocked_reason(inner)
    checks = (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
              ("carrier-grade NAT", isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT),
              ("multicast", ip.is_multicast), ("unspecified", ip.is_unspecified),
              ("private", ip.is_private), ("reserved", ip.is_reserved), ("non-public", not ip.is_global))
    return next((name for name, hit in checks if hit), None)


def resolve(url: str, *, allow_http: bool = False, allow_hosts: Iterable[str] = ()) -> Target:
    """Check ``url`` and resolve its host once; raise PermanentError naming what was refused."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and allow_http):
        raise PermanentError(f"refused {_safe(url)}: only https URLs are allowed (HUB_WEBHOOK_ALLOW_HTTP)")
    if parts.username or parts.password:
        raise PermanentError(f"refused {_safe(url)}: credentials in the URL are not allowed")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise PermanentError(f"refused {_safe(url)}: no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise PermanentError(f"refused {_safe(url)}: invalid port") from None
    addresses = _addresses(host, port)
    if host not in {h.strip().lower() for h in allow_hosts}:
        for address in addresses:
            reason = blocked_reason(address)
            if reason:
                shown = host if str(address) == host else f"{host} resolves to {address}, which is"
                raise PermanentError(f"refused {_safe(url)}: {shown} a {reason} address (SSRF guard; "
                                     "allow a host with HUB_WEBHOOK_ALLOW_HOSTS)")
    return Target(url=url, scheme=scheme, host=host, port=port, address=str(addresses[0]))


def _addresses(host: str, port: int) -> list[IP]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RetriableError(f"could not resolve {host}: {exc}") from exc
    found: list[IP] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise RetriableError(f"could not resolve {host}: no addresses")
    return found


def _safe(url: str) -> str:
    """The URL without query string or credentials (either may carry a merchant's token)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{netloc}{parts.path}"


class PinnedAdapter(HTTPAdapter):
    """Connects to the checked address while TLS (SNI, certificate check) uses the host name."""

    def __init__(self, target: Target, **kwargs: Any):
        self.target = target
        super().__init__(max_retries=0, **kwargs)

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None,
                                        cert: Any = None) -> Any:
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        if host_params["scheme"] == "https":
            pool_kwargs = {**pool_kwargs, "server_hostname": self.target.host, "assert_hostname": self.target.host}
        host_params = {**host_params, "host": self.target.address, "port": self.target.port}
        return self.poolmanager.connection_from_host(**host_params, pool_kwargs=pool_kwargs)
