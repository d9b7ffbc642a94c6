"""Redis Sentinel URLs: ``redis+sentinel://[[user]:password@]host:port[,host:port...]/SERVICE[/DB]``.

Pure: text in, a :class:`SentinelTarget` out, or :class:`RedisUrlError` with a message that
never contains a password. The form is the one node-redis, redisvl and others accept;
``rediss+sentinel://`` uses TLS to the sentinels and the data nodes alike. The password in the
user part is the data nodes'; sentinels that need their own take ``?sentinel_password=``.
A host without a port means Sentinel's default port, 26379.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_SENTINEL_PORT = 26379
QUERY_KEYS = ("sentinel_password",)
SERVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
HOST_RE = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]{1,253})$")
MAX_SENTINELS = 16
MAX_DB = 15  # Redis' default `databases 16`


class RedisUrlError(ValueError):
    """A sentinel URL is malformed; the message names what to fix, never a password."""


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    ssl: bool = False


def is_sentinel_url(url: str) -> bool:
    return url.partition("://")[0].lower() in SENTINEL_SCHEMES


def _host_port(item: str) -> tuple[str, int]:
    if item.startswith("["):
        host, _, rest = item.partition("]")
        host += "]"
        port_text = rest[1:] if rest.startswith(":") else rest
    else:
        host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
    if not HOST_RE.match(host):
        raise RedisUrlError(f"invalid sentinel host {host!r}")
    if port_text == "" and not item.endswith(":"):
        return host.strip("[]"), DEFAULT_SENTINEL_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise RedisUrlError(f"invalid port {port_text!r} for sentinel {host}")
    return host.strip("[]"), int(port_text)


def parse_sentinel_url(url: str) -> SentinelTarget:
    """Parse a ``redis+sentinel://`` or ``rediss+sentinel://`` URL."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or scheme.lower() not in SENTINEL_SCHEMES:
        raise RedisUrlError(f"not a sentinel URL (expected {' or '.join(s + '://' for s in SENTINEL_SCHEMES)})")
    rest, _, fragment = rest.partition("#")
    if fragment:
        raise RedisUrlError("unexpected #fragment")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon and secret else None
    items = hosts.split(",")
    if not hosts or any(not item for item in items):
        raise RedisUrlError("no sentinel address (expected host:port[,host:port...])")
    if len(items) > MAX_SENTINELS:
        raise RedisUrlError(f"at most {MAX_SENTINELS} sentinel addresses, got {len(items)}")
    sentinels = tuple(_host_port(item) for item in items)
    segments = path.split("/") if path else []
    if segments and segments[-1] == "":
        segments.pop()  # one trailing slash is harmless
    if not segments or not segments[0]:
        raise RedisUrlError("missing the service name (expected .../SERVICE[/DB], e.g. /mymaster)")
    if len(segments) > 2:
        raise RedisUrlError("too many path parts (expected /SERVICE[/DB])")
    service = unquote(segments[0])
    if not SERVICE_RE.match(service):
        raise RedisUrlError(f"invalid service name {service[:40]!r}")
    db = 0
    if len(segments) == 2:
        if not segments[1].isdigit() or int(segments[1]) > MAX_DB:
            raise RedisUrlError(f"invalid database number {segments[1][:20]!r} (expected 0-{MAX_DB})")
        db = int(segments[1])
    sentinel_password = None
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise RedisUrlError("malformed query string") from None
    for key, value in pairs:
        if key not in QUERY_KEYS:
            raise RedisUrlError(f"unknown query parameter {key[:40]!r} (known: {', '.join(QUERY_KEYS)})")
        sentinel_password = value or None
    return SentinelTarget(
        sentinels=sentinels,
        service=service,
        db=db,
        username=username,
        password=password,
        sentinel_password=sentinel_password,
        ssl=scheme.lower() == "rediss+sentinel",
    )


def mask_sentinel_url(url: str) -> str:
    """The URL with the user-part password and ``sentinel_password`` replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest, qmark, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        user, colon, secret = userinfo.partition(":")
        netloc = f"{user}:***@{hosts}" if colon and secret else netloc
    if qmark:
        query = re.sub(r"(^|&)(sentinel_password=)[^&]*", r"\1\2***", query)
    return f"{scheme}{sep}{netloc}{slash}{path}{qmark}{query}"
