"""Settings: flags over environment over defaults; values the service cannot
work with are refused at start with a clear message."""

import pytest

from server.settings import Settings, load_settings


def test_flags_win_over_the_environment_which_wins_over_defaults():
    environ = {"CHAT_MESSAGE_BURST": "7", "CHAT_RATE_LIMITS": "off", "REDIS_URL": "redis://x:1"}
    settings = load_settings(["--message-burst", "9"], environ)
    assert (settings.message_burst, settings.rate_limits, settings.redis_url) == (9, False, "redis://x:1")
    assert load_settings([], {}) == Settings()


@pytest.mark.parametrize(
    "argv, environ, message",
    [
        (["--messages-per-sec", "0"], {}, "messages_per_sec must be above 0"),
        (["--login-failures-per-name", "0"], {}, "login_failures_per_name must be at least 1"),
        (["--idempotency-ttl-secs", "0"], {}, "idempotency_ttl_secs must be at least 1"),
        (["--trusted-proxies", "10.0.0.0/8, 10.0.0.300"], {}, "'10.0.0.300' is not an address or network"),
        (["--allowed-origins", "app.example.org"], {}, "is not an origin"),
        (["--bcrypt-cost", "3"], {}, "bcrypt_cost must be 4-31"),
        ([], {"CHAT_PORT": "eighty"}, "CHAT_PORT: not a valid int"),
        ([], {"CHAT_COOKIE_SECURE": "maybe"}, "CHAT_COOKIE_SECURE"),
    ],
)
def test_unusable_values_stop_the_start_with_a_message(capsys, argv, environ, message):
    with pytest.raises(SystemExit) as stopped:
        load_settings(argv, environ)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_good_proxies_and_origins_pass():
    settings = load_settings(
        ["--trusted-proxies", "10.0.0.0/8, ::1, 192.168.1.1", "--allowed-origins", "https://a.example, http://b:8080"], {}
    )
    assert settings.trusted_proxies.startswith("10.0.0.0/8")
