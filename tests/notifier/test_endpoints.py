"""The push-service allow-list against hostile spellings (no request leaves: the checks run
before any connection, and names are resolved by a stand-in resolver)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from notifier.endpoints import EndpointRefused, PushServices, parse_listed

TOKEN = "/fcm/send/dGVzdC10b2tlbg:APA91bH"
LISTED = PushServices(
    parse_listed(
        ["127.0.0.1:8788", "localhost:9000", "[::1]:8789", "push.example.org", "10.0.0.7:443"]
    )
)

ACCEPTED = [
    ("https://fcm.googleapis.com" + TOKEN, "fcm.googleapis.com"),
    (
        "https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
        "updates.push.services.mozilla.com",
    ),
    ("https://web.push.apple.com/QGuQyavXutnMH", "web.push.apple.com"),
    ("https://wns2-by3p.notify.windows.com/w/?token=BQYAAA%3d%3d", "wns2-by3p.notify.windows.com"),
    ("https://fcm.googleapis.com:443" + TOKEN, "fcm.googleapis.com"),
    ("https://FCM.GoogleAPIs.com" + TOKEN, "fcm.googleapis.com"),  # host names ignore case
    ("http://127.0.0.1:8788/push/a", "127.0.0.1"),  # listed loopback: http allowed
    ("http://localhost:9000/push/a", "localhost"),
    ("http://[::1]:8789/push/a", "::1"),
    ("https://push.example.org/p/1", "push.example.org"),  # listed, default port
]


@pytest.mark.parametrize(("url", "host"), ACCEPTED)
def test_push_services_are_accepted(url: str, host: str) -> None:
    endpoint = LISTED.check(url)
    assert endpoint.host == host
    assert endpoint.url == url


REFUSED = [
    # schemes
    ("http://fcm.googleapis.com" + TOKEN, "https"),
    ("ftp://fcm.googleapis.com" + TOKEN, "https URL"),
    ("file:///etc/passwd", "https URL"),
    ("javascript:alert(1)", "https URL"),
    ("//fcm.googleapis.com" + TOKEN, "https URL"),
    ("fcm.googleapis.com" + TOKEN, "https URL"),
    # hosts that are not push services
    ("https://fcm.googleapis.com.evil.com" + TOKEN, "not a known push service"),
    ("https://evil.com/fcm.googleapis.com", "not a known push service"),
    ("https://evilfcm.googleapis.com" + TOKEN, "not a known push service"),
    ("https://notify.windows.com/w/", "not a known push service"),
    ("https://evil.com#@fcm.googleapis.com", "fragment"),
    ("https://evil.com?@fcm.googleapis.com", "not a known push service"),
    ("https://fcm.googleapis.com@evil.com/", "user info"),
    ("https://user:pw@fcm.googleapis.com" + TOKEN, "user info"),
    ("https://fcm.googleapis.com" + TOKEN + "#frag", "fragment"),
    # trailing dots, odd spellings, non-ASCII
    ("https://fcm.googleapis.com." + TOKEN, "end with a dot"),
    ("https://fcm.googleapis.com%2eevil.com/", "plain ASCII host name"),
    ("https://fcm.googleapis.cоm" + TOKEN, "plain ASCII"),  # Cyrillic о
    ("https://xn--fcm-googleapis-com.evil/", "not a known push service"),
    ("https://fcm.googleapis.com\t" + TOKEN, "plain ASCII"),
    ("https://fcm.googleapis.com\\@evil.com/", "plain ASCII"),
    ("https://fcm.googleapis.com /x", "plain ASCII"),
    ("https:///fcm.googleapis.com", "no host"),
    # ports
    ("https://fcm.googleapis.com:8443" + TOKEN, "port 443"),
    ("https://fcm.googleapis.com:99999" + TOKEN, "not a valid URL"),
    ("http://127.0.0.1:8789/push/a", "not a known push service"),  # listed with another port
    ("http://127.0.0.1/push/a", "not a known push service"),
    # metadata services and private addresses, however spelled
    ("http://169.254.169.254/latest/meta-data/", "not a known push service"),
    ("https://169.254.169.254/latest/meta-data/", "not a known push service"),
    ("https://metadata.google.internal/computeMetadata/v1/", "not a known push service"),
    ("https://2852039166/", "plain dotted decimal"),  # 169.254.169.254 in decimal
    ("https://0251.0376.0251.0376/", "plain dotted decimal"),  # in octal
    ("https://0xa9fea9fe/", "plain dotted decimal"),  # in hexadecimal
    ("https://0xa9.0xfe.0xa9.0xfe/", "plain dotted decimal"),
    ("https://127.1/", "plain dotted decimal"),
    ("https://[::ffff:169.254.169.254]/", "not a known push service"),
    ("https://[fd00:ec2::254]/", "not a known push service"),
    ("https://[::1]/", "not a known push service"),
    ("https://[::1/", "not a valid URL"),
    ("https://10.0.0.7/", "not a public one"),  # listed, but private
    ("https://localhost/", "not a known push service"),
    # empty and huge
    ("", "non-empty"),
    ("https://fcm.googleapis.com/" + "a" * 2100, "at most 2048"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_everything_else_is_refused(url: str, reason: str) -> None:
    with pytest.raises(EndpointRefused, match=reason):
        LISTED.check(url)


def test_only_a_listed_loopback_host_may_use_http() -> None:
    services = PushServices(parse_listed(["push.example.org:8080"]))
    services.check("https://push.example.org:8080/p")
    with pytest.raises(EndpointRefused, match="must be https"):
        services.check("http://push.example.org:8080/p")


def _resolver(answers: dict[str, Sequence[str]]) -> object:
    def resolve(host: str, port: int) -> Sequence[str]:
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    return resolve


@pytest.mark.parametrize(
    ("addresses", "allowed"),
    [
        (["142.250.185.74"], True),
        (["2a00:1450:4001:82b::200a"], True),
        (["169.254.169.254"], False),  # cloud metadata
        (["fd00:ec2::254"], False),  # AWS metadata over IPv6
        (["100.100.100.200"], False),  # shared address space (Alibaba metadata)
        (["10.1.2.3"], False),
        (["172.16.0.1"], False),
        (["192.168.1.1"], False),
        (["127.0.0.1"], False),  # loopback, but fcm is not listed
        (["0.0.0.0"], False),
        (["::ffff:10.0.0.1"], False),  # IPv4-mapped
        (["64:ff9b::a9fe:a9fe"], False),  # NAT64 of 169.254.169.254
        (["2002:a9fe:a9fe::1"], False),  # 6to4 of 169.254.169.254
        (["224.0.0.1"], False),
        (["142.250.185.74", "10.0.0.1"], False),  # one bad answer spoils the lot (rebinding)
        ([], False),
    ],
)
def test_a_known_service_must_resolve_to_public_addresses(
    addresses: list[str], allowed: bool
) -> None:
    endpoint = LISTED.check("https://fcm.googleapis.com" + TOKEN)
    resolve = _resolver({"fcm.googleapis.com": addresses})
    if allowed:
        target = LISTED.target(endpoint, resolve)  # type: ignore[arg-type]
        assert str(target.address) == addresses[0]
        assert target.endpoint.host in endpoint.url
    else:
        with pytest.raises(EndpointRefused, match=r"fcm\.googleapis\.com"):
            LISTED.target(endpoint, resolve)  # type: ignore[arg-type]


def test_a_listed_name_may_resolve_to_loopback_but_nothing_private() -> None:
    endpoint = LISTED.check("https://push.example.org/p/1")
    loopback = LISTED.target(endpoint, _resolver({"push.example.org": ["127.0.0.1"]}))  # type: ignore[arg-type]
    assert str(loopback.address) == "127.0.0.1"
    for private in ("10.0.0.5", "169.254.169.254", "192.168.0.2"):
        with pytest.raises(EndpointRefused, match="not a public address"):
            LISTED.target(endpoint, _resolver({"push.example.org": [private]}))  # type: ignore[arg-type]
    with pytest.raises(EndpointRefused, match="does not resolve"):
        LISTED.target(endpoint, _resolver({}))  # type: ignore[arg-type]


def test_the_sender_connects_to_the_address_it_checked() -> None:
    endpoint = LISTED.check("https://fcm.googleapis.com" + TOKEN + "?x=1")
    target = LISTED.target(endpoint, _resolver({"fcm.googleapis.com": ["142.250.185.74"]}))  # type: ignore[arg-type]
    assert target.pinned_url == "https://142.250.185.74:443" + TOKEN + "?x=1"
    assert (endpoint.origin, endpoint.netloc) == (
        "https://fcm.googleapis.com",
        "fcm.googleapis.com",
    )
    six = LISTED.target(endpoint, _resolver({"fcm.googleapis.com": ["2a00:1450::200a"]}))  # type: ignore[arg-type]
    assert six.pinned_url.startswith("https://[2a00:1450::200a]:443/")
    local = LISTED.check("http://127.0.0.1:8788/push/a")
    assert local.origin == "http://127.0.0.1:8788"


@pytest.mark.parametrize(
    "entry", ["https://push.example.org", "push.example.org/path", "*.example.org", "a@b", "x:y"]
)
def test_listed_hosts_are_hosts(entry: str) -> None:
    with pytest.raises(ValueError, match="push_service_hosts"):
        parse_listed([entry])
