"""Where a push may go: the push-service allow-list (ADR 0012).

A subscription's `endpoint` is a URL a client gave us, and the notifier POSTs to it: without a
check that is a server-side request forgery waiting to happen (the cloud metadata service, the
database, anything on the private network). So an endpoint is accepted only when it is

- ASCII, without spaces, control characters, backslashes, user info or a fragment;
- `https` on port 443 of a known push service (`fcm.googleapis.com`,
  `updates.push.services.mozilla.com`, `web.push.apple.com`, `*.notify.windows.com`), or on a
  host the operator listed in `OO_PUSH_SERVICE_HOSTS` (`host` for the scheme's default port,
  `host:port` for another). A listed loopback host may use `http` (tests, a self-hosted push
  service on the same machine);
- spelled plainly: a host name in lower-case-insensitive ASCII labels without a trailing dot,
  or a dotted-quad / bracketed IPv6 literal. Decimal, octal and hexadecimal spellings of an
  address (`2852039166`, `0251.0376.0251.0376`, `0xa9fea9fe`) are refused outright, listed or
  not: resolvers read them as addresses;
- and, every time it is used, at addresses that are public: the host is resolved at send time
  and each address must be global unicast. A loopback address is accepted only for a host the
  operator listed. The sender then connects to the address it checked (`Target.address`), so
  a DNS answer that changes between the check and the connection (rebinding) cannot move it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) -> the addresses it resolves to, as text."""

KNOWN_HOSTS = frozenset(
    {"fcm.googleapis.com", "updates.push.services.mozilla.com", "web.push.apple.com"}
)
KNOWN_SUFFIXES = (".notify.windows.com",)
MAX_ENDPOINT_CHARS = 2048
DEFAULT_PORTS = {"https": 443, "http": 80}

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
_FORBIDDEN = re.compile(r"[^\x21-\x7e]|\\")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EndpointRefused(ValueError):
    """The endpoint is not one oO will POST to; the message says why (never the whole URL)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A checked endpoint: its URL and where it points."""

    url: str
    scheme: str
    host: str
    """Lower case; an IPv6 literal without its brackets."""
    port: int
    listed: bool
    """On a host the operator listed (else a known push service)."""

    @property
    def origin(self) -> str:
        """`scheme://host[:port]`: the VAPID token's audience (RFC 8292 §2)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == DEFAULT_PORTS[self.scheme]:
            return f"{self.scheme}://{host}"
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def netloc(self) -> str:
        """The `Host` header: host, and the port unless it is the scheme's default."""
        return self.origin.split("://", 1)[1]


@dataclass(frozen=True, slots=True)
class Target:
    """An endpoint and the checked address the sender connects to."""

    endpoint: Endpoint
    address: IPAddress

    @property
    def pinned_url(self) -> str:
        """The endpoint's URL with its host replaced by the checked address."""
        parts = urlsplit(self.endpoint.url)
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return parts._replace(netloc=f"{host}:{self.endpoint.port}").geturl()


@dataclass(frozen=True, slots=True)
class ListedHost:
    host: str
    port: int | None

    def matches(self, host: str, port: int, scheme: str) -> bool:
        wanted = self.port if self.port is not None else DEFAULT_PORTS[scheme]
        return host == self.host and port == wanted


def parse_listed(entries: Iterable[str]) -> tuple[ListedHost, ...]:
    """`OO_PUSH_SERVICE_HOSTS` entries: `host` or `host:port` (`[v6]:port` for IPv6).

    Raises
    ------
    ValueError
        Naming `push_service_hosts` and the entry.
    """
    listed = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        try:
            parts = urlsplit(f"//{entry}")
            port = parts.port
            host = _plain_host(parts)
            if parts.path or parts.query or parts.fragment or "@" in parts.netloc:
                raise EndpointRefused("only a host and an optional port")
        except (EndpointRefused, ValueError) as exc:
            raise ValueError(
                f"`push_service_hosts` holds `host` or `host:port` entries, comma-separated "
                f"(no scheme, path or wildcard); {entry!r}: {exc}"
            ) from None
        listed.append(ListedHost(host, port))
    return tuple(listed)


class PushServices:
    """The allow-list: the known push services and the hosts the operator listed."""

    def __init__(self, listed: Iterable[ListedHost] = ()) -> None:
        self.listed = tuple(listed)

    def check(self, url: object) -> Endpoint:
        """The endpoint, when its spelling and host are allowed (no DNS lookup).

        Raises
        ------
        EndpointRefused
            Saying what is wrong with the URL.
        """
        if not isinstance(url, str) or not url:
            raise EndpointRefused("must be a non-empty URL")
        if len(url) > MAX_ENDPOINT_CHARS:
            raise EndpointRefused(f"must be at most {MAX_ENDPOINT_CHARS} characters")
        if _FORBIDDEN.search(url):
            raise EndpointRefused(
                "must be plain ASCII without spaces, control characters or backslashes"
            )
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:  # urllib's words quote the port or name the bracket, no more
            raise EndpointRefused(f"is not a valid URL ({exc})") from None
        scheme = parts.scheme
        if scheme not in DEFAULT_PORTS:
            raise EndpointRefused("must be an https URL of a push service")
        if "@" in parts.netloc:
            raise EndpointRefused("must not carry user info (`user@`)")
        if "#" in url:
            raise EndpointRefused("must not carry a fragment (`#`)")
        host = _plain_host(parts)
        port = port if port is not None else DEFAULT_PORTS[scheme]
        listed = any(entry.matches(host, port, scheme) for entry in self.listed)
        if not listed:
            if not _known(host):
                raise EndpointRefused(
                    f"host {host!r} is not a known push service (fcm.googleapis.com, "
                    "updates.push.services.mozilla.com, web.push.apple.com, *.notify.windows.com) "
                    "nor listed in OO_PUSH_SERVICE_HOSTS"
                )
            if scheme != "https" or port != 443:
                raise EndpointRefused(f"push service {host!r} is reached by https on port 443")
        address = _literal(host)
        loopback = host == "localhost" or (address is not None and address.is_loopback)
        if scheme == "http" and not loopback:
            raise EndpointRefused("must be https (http only for a listed loopback host)")
        if address is not None and not allowed_address(address, loopback_ok=listed):
            raise EndpointRefused(f"address {address} is not a public one")
        return Endpoint(url=url, scheme=scheme, host=host, port=port, listed=listed)

    def target(self, endpoint: Endpoint, resolve: Resolver | None = None) -> Target:
        """Resolve the endpoint's host now and return the address to connect to.

        Every address the host resolves to must be allowed (a mixed answer is refused whole):
        global unicast, or loopback for a listed host.

        Raises
        ------
        EndpointRefused
            When the host does not resolve or resolves to a refused address.
        """
        literal = _literal(endpoint.host)
        if literal is not None:
            texts: Sequence[str] = [str(literal)]
        else:
            try:
                texts = (resolve or system_resolver)(endpoint.host, endpoint.port)
            except OSError as exc:
                raise EndpointRefused(
                    f"host {endpoint.host!r} does not resolve ({type(exc).__name__})"
                ) from None
        addresses = [ipaddress.ip_address(text.split("%", 1)[0]) for text in texts]
        if not addresses:
            raise EndpointRefused(f"host {endpoint.host!r} resolves to no address")
        for address in addresses:
            if not allowed_address(address, loopback_ok=endpoint.listed):
                raise EndpointRefused(
                    f"host {endpoint.host!r} resolves to {address}, which is not a public address"
                )
        return Target(endpoint, addresses[0])


def allowed_address(address: IPAddress, *, loopback_ok: bool) -> bool:
    """Global unicast; loopback only when `loopback_ok`. IPv4 inside IPv6 is judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and address in _NAT64:
            inner = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
        if inner is None and address.teredo is not None:
            inner = address.teredo[1]
        if inner is not None:
            return allowed_address(inner, loopback_ok=loopback_ok)
    if address.is_loopback:
        return loopback_ok
    return address.is_global and not (address.is_multicast or address.is_reserved)


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _known(host: str) -> bool:
    if host in KNOWN_HOSTS:
        return True
    return any(
        host.endswith(suffix) and _LABEL.fullmatch(host.removesuffix(suffix).rsplit(".", 1)[-1])
        for suffix in KNOWN_SUFFIXES
    )


def _plain_host(parts: SplitResult) -> str:
    """The URL's host in lower case, when it is a plain name or a plain address literal."""
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if netloc.startswith("["):
        literal = netloc[1:].split("]", 1)[0]
        try:
            return str(ipaddress.IPv6Address(literal))
        except ValueError:
            raise EndpointRefused("has a malformed IPv6 address") from None
    host = (parts.hostname or "").lower()
    if not host:
        raise EndpointRefused("has no host")
    if host.endswith("."):
        raise EndpointRefused("host must not end with a dot")
    labels = host.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise EndpointRefused(f"host {host!r} is not a plain ASCII host name")
    if all(_NUMERIC_LABEL.fullmatch(label) for label in labels):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise EndpointRefused(
                f"host {host!r} spells an address in a form resolvers read differently; "
                "write IPv4 addresses in plain dotted decimal"
            ) from None
    return host


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
