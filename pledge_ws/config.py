"""Settings from the environment, validated once at start-up.

Pure: takes a mapping (``os.environ`` in production, a dict in tests) and returns a frozen
:class:`Settings` or raises :class:`ConfigError` naming the variable, so a bad deployment
stops with one clear line instead of starting half-working.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from pledge_ws.core.redis_url import (
    SENTINEL_SCHEMES,
    RedisUrlError,
    is_sentinel_url,
    mask_sentinel_url,
    parse_sentinel_url,
)

T = TypeVar("T")

SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")
# KuCoin serves at most 300 topics on one connection, and the service holds exactly one.
MAX_SYMBOLS = 300
MIN_REST_FALLBACK_INTERVAL = 0.5
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """A configuration variable is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Settings:
    port: int = 8000
    web_concurrency: int = 1
    symbols: tuple[str, ...] = ("PLGR-USDT",)
    kucoin_api_url: str = "https://api.kucoin.com"
    redis_url: str | None = None
    price_key: str = "plgr_price"
    heartbeat_timeout: float = 20.0
    allowed_origins: tuple[str, ...] = ("*",)
    slow_client_timeout: float = 10.0
    max_connections: int = 20000
    max_connections_per_ip: int = 0
    max_message_bytes: int = 4096
    max_messages_per_second: float = 20.0
    trusted_proxies: tuple[str, ...] = ()
    max_price_jump: float = 0.0
    rest_fallback_interval: float = 2.0  # seconds between level-1 polls of a symbol; 0 = off
    log_level: str = "INFO"
    log_format: str = "text"
    # issue 12: gunicorn's access log (off by default) and a separate port for /metrics
    access_log: bool = False
    metrics_port: int | None = None

    @property
    def primary_symbol(self) -> str:
        return self.symbols[0]

    def origin_allowed(self, origin: str | None) -> bool:
        """Browsers always send Origin; non-browser clients may omit it and are let in."""
        if "*" in self.allowed_origins or origin is None:
            return True
        return origin.rstrip("/") in self.allowed_origins


def _number(env: Mapping[str, str], name: str, default: T, cast: Callable[[str], T], low: float) -> T:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError:
        kind = "an integer" if cast is int else "a number"
        raise ConfigError(f"{name}: expected {kind}, got {raw!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name}: expected a finite number, got {raw!r}")
    if value < low:  # type: ignore[operator]
        raise ConfigError(f"{name}: must be at least {low}, got {raw!r}")
    return value


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    raw = env.get(name)
    if raw is None:
        return None
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _url(env: Mapping[str, str], name: str, default: str | None, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if is_sentinel_url(raw) and set(SENTINEL_SCHEMES) <= set(schemes):
        try:
            parse_sentinel_url(raw)
        except RedisUrlError as exc:
            raise ConfigError(f"{name}: {exc} in {mask_url(raw)!r}") from None
        return raw
    parts = urlsplit(raw)
    if parts.scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ConfigError(f"{name}: unsupported scheme {parts.scheme!r} (expected {allowed})")
    if not parts.hostname and not (parts.scheme == "unix" and parts.path):
        raise ConfigError(f"{name}: missing host in {mask_url(raw)!r}")
    try:
        parts.port  # noqa: B018 - raises on a non-numeric port
    except ValueError:
        raise ConfigError(f"{name}: invalid port in {mask_url(raw)!r}") from None
    return raw.rstrip("/") if name == "KUCOIN_API_URL" else raw


def mask_url(url: str) -> str:
    """The URL with any password replaced, for logs and error messages."""
    if is_sentinel_url(url):
        return mask_sentinel_url(url)
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _symbols(env: Mapping[str, str]) -> tuple[str, ...]:
    items = _list(env, "SYMBOLS")
    if items is None:
        return Settings.symbols
    if not items:
        raise ConfigError("SYMBOLS: empty symbol list (expected e.g. PLGR-USDT,BTC-USDT)")
    symbols: list[str] = []
    for item in items:
        symbol = item.upper()
        if not SYMBOL_RE.match(symbol):
            raise ConfigError(f"SYMBOLS: invalid symbol {item!r} (expected BASE-QUOTE, e.g. PLGR-USDT)")
        if symbol not in symbols:
            symbols.append(symbol)
    if len(symbols) > MAX_SYMBOLS:
        raise ConfigError(
            f"SYMBOLS: at most {MAX_SYMBOLS} symbols (KuCoin's limit of topics on one connection), got {len(symbols)}"
        )
    return tuple(symbols)


def _origins(env: Mapping[str, str]) -> tuple[str, ...]:
    items = _list(env, "ALLOWED_ORIGINS")
    if items is None:
        return Settings.allowed_origins
    if not items:
        raise ConfigError("ALLOWED_ORIGINS: empty list (use * to allow any origin)")
    for item in items:
        if item != "*" and not re.match(r"^https?://[^/\s]+$", item.rstrip("/")):
            raise ConfigError(f"ALLOWED_ORIGINS: invalid origin {item!r} (expected e.g. https://example.com)")
    return tuple(item.rstrip("/") for item in items)


def _proxies(env: Mapping[str, str]) -> tuple[str, ...]:
    items = _list(env, "TRUSTED_PROXIES") or ()
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"TRUSTED_PROXIES: invalid address {item!r}") from None
    return items


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...], upper: bool) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    value = raw.upper() if upper else raw.lower()
    if value not in choices:
        raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {raw!r}")
    return value


def load_settings(env: Mapping[str, str]) -> Settings:
    """Read and validate every variable; the first problem raises :class:`ConfigError`."""
    d = Settings()
    port = _number(env, "PORT", d.port, int, 1)
    if port > 65535:
        raise ConfigError(f"PORT: must be at most 65535, got {port}")
    redis_url = _url(env, "REDIS_URL", None, ("redis", "rediss", "unix", *SENTINEL_SCHEMES))
    web_concurrency = _number(env, "WEB_CONCURRENCY", d.web_concurrency, int, 1)
    if web_concurrency > 1 and redis_url is None:
        raise ConfigError(
            f"WEB_CONCURRENCY: {web_concurrency} workers need REDIS_URL "
            "(workers share one exchange connection through Redis)"
        )
    price_key = env.get("PRICE_KEY", d.price_key).strip()
    if not price_key or len(price_key) > 256 or any(c.isspace() for c in price_key):
        raise ConfigError(f"PRICE_KEY: invalid Redis key {price_key!r}")
    max_price_jump = _number(env, "MAX_PRICE_JUMP", d.max_price_jump, float, 0)
    rest_fallback_interval = _number(env, "REST_FALLBACK_INTERVAL", d.rest_fallback_interval, float, 0)
    if 0 < rest_fallback_interval < MIN_REST_FALLBACK_INTERVAL:
        raise ConfigError(
            f"REST_FALLBACK_INTERVAL: 0 (off) or at least {MIN_REST_FALLBACK_INTERVAL:g} seconds, "
            f"got {rest_fallback_interval:g}"
        )
    return Settings(
        port=port,
        web_concurrency=web_concurrency,
        symbols=_symbols(env),
        kucoin_api_url=_url(env, "KUCOIN_API_URL", d.kucoin_api_url, ("http", "https")) or "",
        redis_url=redis_url,
        price_key=price_key,
        heartbeat_timeout=_number(env, "HEARTBEAT_TIMEOUT", d.heartbeat_timeout, float, 0.1),
        allowed_origins=_origins(env),
        slow_client_timeout=_number(env, "SLOW_CLIENT_TIMEOUT", d.slow_client_timeout, float, 0.1),
        max_connections=_number(env, "MAX_CONNECTIONS", d.max_connections, int, 1),
        max_connections_per_ip=_number(env, "MAX_CONNECTIONS_PER_IP", d.max_connections_per_ip, int, 0),
        max_message_bytes=_number(env, "MAX_MESSAGE_BYTES", d.max_message_bytes, int, 16),
        max_messages_per_second=_number(env, "MAX_MESSAGES_PER_SECOND", d.max_messages_per_second, float, 0.1),
        trusted_proxies=_proxies(env),
        max_price_jump=max_price_jump,
        rest_fallback_interval=rest_fallback_interval,
        log_level=_choice(env, "LOG_LEVEL", d.log_level, LOG_LEVELS, upper=True),
        log_format=_choice(env, "LOG_FORMAT", d.log_format, ("text", "json"), upper=False),
        access_log=_choice(env, "ACCESS_LOG", "0", ("0", "1"), upper=False) == "1",
        metrics_port=_metrics_port(env, port),
    )


def _metrics_port(env: Mapping[str, str], port: int) -> int | None:
    """METRICS_PORT: a second listener for /metrics and the detailed /readyz, or None."""
    if not env.get("METRICS_PORT", "").strip():
        return None
    value = _number(env, "METRICS_PORT", 0, int, 1)
    if value > 65535:
        raise ConfigError(f"METRICS_PORT: must be at most 65535, got {value}")
    if value == port:
        raise ConfigError(f"METRICS_PORT: must differ from PORT ({port}); unset it to serve /metrics on PORT")
    return value
