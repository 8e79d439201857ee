"""`client_address.resolve_client`: the one rule for who the client is, in its many spellings,
and the settings that name the trusted proxies."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from core.errors import SettingsError
from marketplace.server.client_address import rate_key, resolve_client
from marketplace.server.settings import RateLimit, ServerSettings, parse_networks

TRUSTED = parse_networks("10.0.0.0/8, 192.168.1.1, fd00::/8")


def client(peer: str | None, *headers: tuple[str, str], trusted: str | None = None) -> str:
    networks = TRUSTED if trusted is None else parse_networks(trusted)
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return resolve_client(peer, Headers(raw=raw), networks)


@pytest.mark.parametrize("headers", [
    [("X-Forwarded-For", "1.2.3.4")],
    [("X-Forwarded-For", "1.2.3.4, 10.0.0.1")],
    [("Forwarded", "for=1.2.3.4")],
    [("Forwarded", 'for="[2001:db8::1]:4711"')],
    [("X-Real-IP", "1.2.3.4")],
    [("X-Forwarded-For", "1.2.3.4"), ("X-Real-IP", "5.6.7.8"), ("Forwarded", "for=9.9.9.9")],
    [("X-Forwarded-For", "garbage\u00e9")],
])
def test_an_untrusted_peer_is_the_client_whatever_it_sends(headers: list[tuple[str, str]]) -> None:
    assert client("203.0.113.9", *headers) == "203.0.113.9"
    assert client("203.0.113.9", *headers, trusted="") == "203.0.113.9"
    # Not even a loopback or private peer is believed without being named.
    assert client("127.0.0.1", *headers, trusted="10.0.0.0/8") == "127.0.0.1"


@pytest.mark.parametrize(("headers", "expected"), [
    ([], "10.0.0.5"),  # a trusted peer that forwards nothing is the client itself
    ([("X-Forwarded-For", "198.51.100.1")], "198.51.100.1"),
    ([("X-Forwarded-For", "6.6.6.6, 198.51.100.1")], "198.51.100.1"),  # spoofed prefix
    ([("X-Forwarded-For", "198.51.100.1, 10.9.9.9, 192.168.1.1")], "198.51.100.1"),
    ([("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.1")], "198.51.100.1"),
    ([("X-Forwarded-For", "10.1.1.1, 10.2.2.2")], "10.1.1.1"),  # all trusted: left-most
    ([("X-Forwarded-For", "unknown, 198.51.100.1")], "198.51.100.1"),
    ([("X-Forwarded-For", "198.51.100.1, unknown")], "10.0.0.5"),  # the proxy does not know
    ([("X-Forwarded-For", "198.51.100.1, unknown, 10.0.0.7")], "10.0.0.7"),
    ([("X-Forwarded-For", " 198.51.100.1:8080 ")], "198.51.100.1"),
    ([("X-Forwarded-For", "::ffff:198.51.100.1")], "198.51.100.1"),
    ([("X-Forwarded-For", "2001:DB8:0:0::1")], "2001:db8::1"),
    ([("X-Forwarded-For", "[2001:db8::1]:443")], "2001:db8::1"),
    ([("Forwarded", "for=198.51.100.1;proto=https;by=10.0.0.5")], "198.51.100.1"),
    ([("Forwarded", 'For="198.51.100.1:1234", for=10.0.0.9')], "198.51.100.1"),
    ([("Forwarded", "for=6.6.6.6, for=198.51.100.1")], "198.51.100.1"),
    ([("Forwarded", "for=_hidden, for=198.51.100.1")], "198.51.100.1"),
    ([("Forwarded", "proto=https")], "10.0.0.5"),  # no for=: nothing named
    ([("X-Real-IP", "198.51.100.1")], "198.51.100.1"),
    ([("X-Real-IP", "")], "10.0.0.5"),
    # Headers agreeing on the client are fine; disagreeing ones name no one.
    ([("X-Forwarded-For", "6.6.6.6, 198.51.100.1"), ("X-Real-IP", "198.51.100.1")],
     "198.51.100.1"),
    ([("X-Forwarded-For", "198.51.100.1"), ("X-Real-IP", "198.51.100.2")], "10.0.0.5"),
    ([("X-Forwarded-For", "198.51.100.1"), ("Forwarded", "for=6.6.6.6")], "10.0.0.5"),
])
def test_a_trusted_proxy_names_the_right_most_untrusted_hop(
    headers: list[tuple[str, str]], expected: str
) -> None:
    assert client("10.0.0.5", *headers) == expected


def test_long_chains_are_cut_and_odd_peers_are_kept_as_they_are() -> None:
    chain = ", ".join(["10.0.0.1"] * 10_000 + ["198.51.100.1"])
    assert client("10.0.0.5", ("X-Forwarded-For", chain)) == "198.51.100.1"
    assert client("10.0.0.5", ("X-Forwarded-For", "10.0.0.1, " * 200 + "10.0.0.2")) == "10.0.0.1"
    assert client(None) == "unknown"
    assert client("testclient") == "testclient"
    assert client("::ffff:10.0.0.5", ("X-Real-IP", "198.51.100.1")) == "198.51.100.1"
    assert client("fd00::1", ("X-Real-IP", "198.51.100.1")) == "198.51.100.1"


def test_rate_keys_group_ipv6_by_64_and_leave_ipv4_alone() -> None:
    assert rate_key("198.51.100.1") == "198.51.100.1"
    assert rate_key("2001:db8:1:2:3:4:5:6") == rate_key("2001:db8:1:2::9") == "2001:db8:1:2::/64"
    assert rate_key("2001:db8:1:3::1") != rate_key("2001:db8:1:2::1")
    assert rate_key("testclient") == "testclient"


def test_settings_read_the_new_variables_and_name_a_bad_one() -> None:
    settings = ServerSettings.from_env({
        "AGENTFACTORY_TRUSTED_PROXIES": " 10.0.0.1 , 172.16.0.0/12,::1 ",
        "AGENTFACTORY_TOKEN_RATE": "5/60",
        "AGENTFACTORY_SESSION_TTL": "3600",
    })
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.1/32", "172.16.0.0/12",
                                                          "::1/128"]
    assert settings.token_rate == RateLimit(5, 5 / 60)
    assert settings.web_session_ttl_s == 3600
    defaults = ServerSettings.from_env({})
    assert defaults.trusted_proxies == () and defaults.token_rate == RateLimit(10, 10 / 3600)
    for name, value in [("AGENTFACTORY_TRUSTED_PROXIES", "10.0.0.1, proxy.local"),
                        ("AGENTFACTORY_TRUSTED_PROXIES", "10.0.0.0/33"),
                        ("AGENTFACTORY_TOKEN_RATE", "ten"),
                        ("AGENTFACTORY_SESSION_TTL", "-1"),
                        ("AGENTFACTORY_SESSION_TTL", "nan"),
                        ("AGENTFACTORY_SESSION_TTL", "inf")]:
        with pytest.raises(SettingsError) as caught:
            ServerSettings.from_env({name: value})
        assert caught.value.field == name and caught.value.value == value
        assert name in str(caught.value) and "\n" not in str(caught.value)
