"""Sentinel URL parsing: each valid form, each malformed one, and no password in any error."""

import pytest

from pledge_ws.config import ConfigError, load_settings, mask_url
from pledge_ws.core.redis_url import RedisUrlError, SentinelTarget, parse_sentinel_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+sentinel://h1:26379/mymaster", SentinelTarget((("h1", 26379),), "mymaster")),
        (
            "redis+sentinel://h1:1,h2:2,10.0.0.3:3/svc/2",
            SentinelTarget((("h1", 1), ("h2", 2), ("10.0.0.3", 3)), "svc", db=2),
        ),
        ("redis+sentinel://h1/svc", SentinelTarget((("h1", 26379),), "svc")),
        ("redis+sentinel://[::1]:5000,[fe80::1]/svc/", SentinelTarget((("::1", 5000), ("fe80::1", 26379)), "svc")),
        ("redis+sentinel://:s3cret@h1:1/svc", SentinelTarget((("h1", 1),), "svc", password="s3cret")),
        (
            "redis+sentinel://alice:p%40ss@h1:1/svc/0",
            SentinelTarget((("h1", 1),), "svc", username="alice", password="p@ss"),
        ),
        ("redis+sentinel://alice@h1:1/svc", SentinelTarget((("h1", 1),), "svc", username="alice")),
        (
            "rediss+sentinel://:pw@h1:1/svc?sentinel_password=sp",
            SentinelTarget((("h1", 1),), "svc", password="pw", sentinel_password="sp", ssl=True),
        ),
    ],
)
def test_valid_sentinel_urls(url, expected):
    assert parse_sentinel_url(url) == expected
    assert load_settings({"REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://:pw@h1:26379", "missing the service name"),
        ("redis+sentinel://:pw@h1:26379/", "missing the service name"),
        ("redis+sentinel://:pw@h1:xx/svc", "invalid port 'xx'"),
        ("redis+sentinel://:pw@h1:0/svc", "invalid port '0'"),
        ("redis+sentinel://:pw@h1:70000/svc", "invalid port '70000'"),
        ("redis+sentinel://:pw@h1:/svc", "invalid port ''"),
        ("redis+sentinel://:pw@h1:1,,h2:2/svc", "no sentinel address"),
        ("redis+sentinel://:pw@/svc", "no sentinel address"),
        ("redis+sentinel://:pw@h 1:1/svc", "invalid sentinel host"),
        ("redis+sentinel://:pw@h1:1/svc/db", "invalid database number 'db'"),
        ("redis+sentinel://:pw@h1:1/svc/99", "invalid database number '99'"),
        ("redis+sentinel://:pw@h1:1/svc/0/x", "too many path parts"),
        ("redis+sentinel://:pw@h1:1/sv c", "invalid service name"),
        ("redis+sentinel://:pw@h1:1/svc?timeout=3", "unknown query parameter 'timeout'"),
        ("redis+sentinel://:pw@h1:1/svc?sentinel_password", "malformed query string"),
        ("redis+sentinel://:pw@h1:1/svc#x", "unexpected #fragment"),
    ],
)
def test_malformed_sentinel_urls_stop_start_up_naming_redis_url(url, message):
    with pytest.raises(RedisUrlError, match=message):
        parse_sentinel_url(url)
    with pytest.raises(ConfigError) as info:
        load_settings({"REDIS_URL": url})
    assert str(info.value).startswith(f"REDIS_URL: {message}")
    assert "pw" not in str(info.value).replace("sentinel_password", "")


def test_passwords_are_masked():
    url = "redis+sentinel://u:hunter2@h1:1,h2:2/svc?sentinel_password=topsecret"
    assert mask_url(url) == "redis+sentinel://u:***@h1:1,h2:2/svc?sentinel_password=***"
    assert mask_url("redis+sentinel://h1:1/svc") == "redis+sentinel://h1:1/svc"
