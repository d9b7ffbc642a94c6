import pytest

from pledge_ws.config import ConfigError, Settings, load_settings, mask_url


def test_defaults_match_the_documented_ones():
    s = load_settings({})
    assert s == Settings()
    assert s.port == 8000 and s.symbols == ("PLGR-USDT",) and s.price_key == "plgr_price"
    assert s.kucoin_api_url == "https://api.kucoin.com" and s.redis_url is None
    assert s.heartbeat_timeout == 20 and s.max_connections == 20000 and s.max_message_bytes == 4096


def test_values_are_parsed():
    s = load_settings(
        {
            "SYMBOLS": "plgr-usdt, BTC-USDT,PLGR-USDT",
            "REDIS_URL": "redis://:secret@localhost:6379/0",
            "WEB_CONCURRENCY": "2",
            "ALLOWED_ORIGINS": "https://a.example, http://localhost:8000/",
            "KUCOIN_API_URL": "http://127.0.0.1:9000/",
            "TRUSTED_PROXIES": "10.0.0.0/8,127.0.0.1",
        }
    )
    assert s.symbols == ("PLGR-USDT", "BTC-USDT") and s.primary_symbol == "PLGR-USDT"
    assert s.web_concurrency == 2
    assert s.allowed_origins == ("https://a.example", "http://localhost:8000")
    assert s.kucoin_api_url == "http://127.0.0.1:9000"
    assert s.origin_allowed("https://a.example") and not s.origin_allowed("https://evil.example")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "abc"}, "PORT: expected an integer, got 'abc'"),
        ({"PORT": "70000"}, "PORT: must be at most 65535"),
        ({"HEARTBEAT_TIMEOUT": "nan"}, "HEARTBEAT_TIMEOUT: expected a finite number"),
        ({"HEARTBEAT_TIMEOUT": "-1"}, "HEARTBEAT_TIMEOUT: must be at least"),
        ({"SYMBOLS": " , "}, "SYMBOLS: empty symbol list"),
        ({"SYMBOLS": "PLGR_USDT"}, "SYMBOLS: invalid symbol"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL: unsupported scheme 'http'"),
        ({"REDIS_URL": "redis://:pw@host:xx"}, "REDIS_URL: invalid port"),
        ({"KUCOIN_API_URL": "ftp://x"}, "KUCOIN_API_URL: unsupported scheme"),
        ({"WEB_CONCURRENCY": "2"}, "WEB_CONCURRENCY: 2 workers need REDIS_URL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT: expected one of text, json"),
        ({"ALLOWED_ORIGINS": "evil"}, "ALLOWED_ORIGINS: invalid origin"),
        ({"TRUSTED_PROXIES": "nope"}, "TRUSTED_PROXIES: invalid address"),
        ({"PRICE_KEY": "a b"}, "PRICE_KEY: invalid Redis key"),
        ({"SYMBOLS": ",".join(f"S{i}-USDT" for i in range(301))}, "SYMBOLS: at most 300 symbols"),
        ({"REST_FALLBACK_INTERVAL": "0.1"}, "REST_FALLBACK_INTERVAL: 0 (off) or at least 0.5"),
        ({"REST_FALLBACK_INTERVAL": "-1"}, "REST_FALLBACK_INTERVAL: must be at least"),
    ],
)
def test_bad_configuration_names_the_variable(env, message):
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert str(info.value).startswith(message)
    assert "pw" not in str(info.value)


def test_mask_url_hides_password():
    assert mask_url("redis://user:secret@host:6379/0") == "redis://user:***@host:6379/0"
    assert mask_url("redis://host:6379") == "redis://host:6379"


def test_three_hundred_symbols_and_fallback_settings_are_accepted():
    settings = load_settings({"SYMBOLS": ",".join(f"S{i}-USDT" for i in range(300)), "REST_FALLBACK_INTERVAL": "0"})
    assert len(settings.symbols) == 300 and settings.rest_fallback_interval == 0
    assert load_settings({}).rest_fallback_interval == 2.0
