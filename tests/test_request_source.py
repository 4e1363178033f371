"""The client address a rate limit counts, and the cross-site rule, on
Tornado's own request objects."""

import dataclasses

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from handlers.request_source import RequestSource
from server.settings import Settings


def request(peer: str, host: str = "chat.example.org", **headers) -> HTTPServerRequest:
    start = RequestStartLine("POST", "/api/chats", "HTTP/1.1")
    req = HTTPServerRequest(start_line=start, headers=HTTPHeaders({"Host": host, **headers}))
    req.remote_ip = peer
    return req


def source(**settings) -> RequestSource:
    return RequestSource(dataclasses.replace(Settings(), **settings))


@pytest.mark.parametrize(
    "peer, expected",
    [
        ("203.0.113.5", "203.0.113.5"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # the same subscriber
        ("::ffff:198.51.100.4", "198.51.100.4"),
    ],
)
def test_the_peer_is_the_client_without_trusted_proxies(peer, expected):
    assert source().client_address(request(peer, **{"X-Forwarded-For": "192.0.2.1"})) == expected


def test_forwarded_hops_are_read_from_the_right_past_trusted_proxies_only():
    proxies = source(trusted_proxies="10.0.0.0/8, 192.168.1.1")
    chain = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7, 10.1.2.3"}
    assert proxies.client_address(request("192.168.1.1", **chain)) == "203.0.113.7"
    # A peer that is not a trusted proxy is the client, whatever it forwards.
    assert proxies.client_address(request("198.51.100.1", **chain)) == "198.51.100.1"
    # Hops some proxies write with a port.
    for hop, client in (("9.9.9.3:1234", "9.9.9.3"), ("[2001:db8::1]:443", "2001:db8::/64"), ("[2001:db8::2]", "2001:db8::/64")):
        assert proxies.client_address(request("10.0.0.1", **{"X-Forwarded-For": hop})) == client
    # Garbage in the header stops the walk at the proxy itself.
    assert proxies.client_address(request("10.0.0.1", **{"X-Forwarded-For": "not-an-ip"})) == "10.0.0.1"


@pytest.mark.parametrize(
    "headers, cross",
    [
        ({}, False),
        ({"Origin": "https://chat.example.org"}, False),
        ({"Origin": "http://chat.example.org:80"}, False),
        ({"Origin": "https://CHAT.example.org"}, False),
        ({"Origin": "https://chat.example.org:8443"}, True),
        ({"Origin": "https://evil.example"}, True),
        ({"Origin": "null"}, True),
        ({"Origin": "file://"}, True),
        ({"Sec-Fetch-Site": "same-origin"}, False),
        ({"Sec-Fetch-Site": "same-site", "Origin": "https://blog.example.org"}, True),
        ({"Sec-Fetch-Site": "cross-site"}, True),
        ({"Origin": "https://app.example.net"}, False),  # allowed below
    ],
)
def test_cross_site(headers, cross):
    rule = source(allowed_origins="https://app.example.net")
    assert rule.is_cross_site(request("127.0.0.1", **headers)) is cross
