"""The callback address classifier: every IPv6 form that carries an IPv4 address is judged by it."""

from __future__ import annotations

import ipaddress

import pytest

from cracker.domain.callbacks import CallbackPolicy, embedded_ipv4, forbidden_address, forbidden_host


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "255.255.255.255", "::1", "::", "fc00::1", "fd12::1", "fe80::1", "fe80::1%eth0", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1",  # IPv4-mapped
    "::127.0.0.1", "::10.0.0.1", "::169.254.169.254",  # IPv4-compatible
    "::ffff:0:127.0.0.1", "::ffff:0:a00:1",  # IPv4-translated (SIIT)
    "64:ff9b::127.0.0.1", "64:ff9b::a00:1", "64:ff9b::a9fe:a9fe",  # NAT64, well-known prefix
    "64:ff9b:1::8.8.8.8", "64:ff9b:1:ffff::1",  # local-use NAT64: refused whatever it carries
    "2002:7f00:1::1", "2002:a00:1::", "2002:a9fe:a9fe::1",  # 6to4
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "2001:0:a00:1:8000:63bf:3fff:fdd2",  # Teredo, server 10.0.0.1
    "fec0::1", "feff::1",  # site-local
    "2001:db8::1",  # documentation
    "not an address", "",
])
def test_forbidden(address: str) -> None:
    assert forbidden_address(address)


@pytest.mark.parametrize("address", [
    "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8",
])
def test_allowed(address: str) -> None:
    assert not forbidden_address(address)


def test_embedded_forms_are_unwrapped() -> None:
    def inner(address: str) -> list[str]:
        return [str(ip) for ip in embedded_ipv4(ipaddress.IPv6Address(address))]

    assert inner("64:ff9b::a00:1") == ["10.0.0.1"]
    assert inner("::ffff:10.0.0.1") == ["10.0.0.1"]
    assert inner("::10.0.0.1") == ["10.0.0.1"]
    assert inner("2002:a00:1::") == ["10.0.0.1"]
    assert inner("2001:0:4136:e378:8000:63bf:3fff:fdd2") == ["65.54.227.120", "192.0.2.45"]
    assert inner("2606:4700:4700::1111") == []


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "api.localhost", "db.internal", "[::1]", "[fec0::1]",
                                  "metadata.google.internal", "[64:ff9b::7f00:1]"])
def test_forbidden_hosts(host: str) -> None:
    assert forbidden_host(host)


def test_names_are_left_to_delivery() -> None:
    assert not forbidden_host("example.com")


def test_policy_ports() -> None:
    default = CallbackPolicy()
    assert default.url_problem("https://example.com/hook") is None
    assert default.url_problem("http://example.com/hook") is None
    assert default.url_problem("https://example.com:443/hook") is None
    assert "port 8443" in (default.url_problem("https://example.com:8443/hook") or "")
    assert CallbackPolicy(allowed_ports=frozenset({8443})).url_problem("https://example.com:8443/") is None
    assert CallbackPolicy(allowed_ports=None).url_problem("http://example.com:25/") is None
    assert CallbackPolicy(allow_private=True).url_problem("http://127.0.0.1/hook") is None
    assert default.url_problem("http://127.0.0.1/hook") is not None
