"""Settings: one error naming every problem, and secrets that never show."""

from __future__ import annotations

import logging

import pytest

from hub.config import load_settings, markdown_table
from hub.kernel.errors import ConfigError


def test_production_names_every_missing_variable_at_once():
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"HUB_ENV": "production", "HUB_MAX_BODY_BYTES": "lots"})
    text = str(err.value)
    for name in ("HUB_DATABASE_URL", "HUB_REDIS_URL", "HUB_ADMIN_TOKEN", "HUB_MAX_BODY_BYTES"):
        assert name in text
    assert len(err.value.problems) == 4


def test_connectors_in_use_must_have_their_secrets():
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"HUB_CONNECTORS": "stripe,shopify,nosuch"})
    text = str(err.value)
    assert "HUB_STRIPE_WEBHOOK_SECRET" in text and "HUB_SHOPIFY_WEBHOOK_SECRET" in text
    assert "unknown connector 'nosuch'" in text


def test_embedded_defaults_need_nothing():
    settings = load_settings(environ={})
    assert settings.database_url.endswith("var/hub.db")
    assert settings.embedded_queue


def test_invalid_values_are_reported_without_their_secret_values():
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"HUB_PUBLIC_URL": "not a url", "HUB_RETRY_MAX_ATTEMPTS": "x",
                               "HUB_STRIPE_WEBHOOK_SECRET": "whsec_supersecret"})
    assert "HUB_PUBLIC_URL" in str(err.value) and "HUB_RETRY_MAX_ATTEMPTS" in str(err.value)
    assert "supersecret" not in str(err.value)


def test_secrets_are_masked_in_repr_and_logs(make_hub, caplog):
    hub = make_hub(HUB_STRIPE_WEBHOOK_SECRET="whsec_supersecret")
    assert "supersecret" not in repr(hub.settings)
    from hub.logs import ScrubSecrets

    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "key was %s", ("whsec_supersecret",), None)
    ScrubSecrets().filter(record)
    assert "supersecret" not in record.getMessage()


def test_cli_exits_2_with_the_list_of_problems(monkeypatch):
    from hub.cli import main

    monkeypatch.setenv("HUB_ENV", "production")
    monkeypatch.setattr("sys.argv", ["hub", "events"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2


def test_configuration_table_lists_every_setting():
    table = markdown_table()
    for name in ("HUB_DATABASE_URL", "HUB_REDIS_URL", "HUB_ADMIN_TOKEN", "HUB_PUBLIC_URL",
                 "HUB_STRIPE_WEBHOOK_SECRET", "HUB_KLAVIYO_API_KEY", "HUB_KLAVIYO_API_URL"):
        assert f"`{name}`" in table


def test_processes_refuse_to_start_on_rules_that_do_not_load(tmp_path, monkeypatch, capsys):
    """`hub worker|scheduler|run|serve` exit 2 naming every error with file:line:col."""
    from hub.cli import main

    (tmp_path / "bad.yaml").write_text("rules:\n  - id: x\n    on: [payment.failedd]\n    actions: []\n")
    monkeypatch.setenv("HUB_RULES_PATH", str(tmp_path))
    monkeypatch.setenv("HUB_DATABASE_URL", f"sqlite:///{tmp_path / 'hub.db'}")
    monkeypatch.setattr("sys.argv", ["hub", "scheduler"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert f"{tmp_path / 'bad.yaml'}:3:10: unknown event type 'payment.failedd'" in capsys.readouterr().err


def test_default_retries_span_about_two_days():
    """The default backoff (jittered, doubling, capped) puts the last attempt about two days after
    the first, as the README and the settings table say."""
    from hub.outbound.outbox import backoff_seconds

    settings = load_settings(environ={})
    attempts = settings["HUB_RETRY_MAX_ATTEMPTS"]

    def horizon(jitter: float) -> float:  # the waits between attempt 1 and the last attempt
        return sum(backoff_seconds(n, settings["HUB_RETRY_BASE_SECONDS"], settings["HUB_RETRY_MAX_SECONDS"], jitter)
                   for n in range(1, attempts)) / 86400

    assert 1.3 < horizon(0.0) < horizon(0.5) < horizon(1.0) < 3.0
    assert 1.8 < horizon(0.5) < 2.4  # the typical run


def test_the_merchants_time_zone_is_an_iana_name_defaulting_to_utc() -> None:
    from hub.config import load_settings

    assert load_settings(environ={}, dotenv_path=None)["HUB_DEFAULT_TIMEZONE"] == "UTC"
    assert load_settings(environ={"HUB_DEFAULT_TIMEZONE": "Europe/Paris"}, dotenv_path=None)[
        "HUB_DEFAULT_TIMEZONE"] == "Europe/Paris"
    with pytest.raises(ConfigError, match="HUB_DEFAULT_TIMEZONE: must be an IANA time zone"):
        load_settings(environ={"HUB_DEFAULT_TIMEZONE": "CEST"}, dotenv_path=None)
PRODUCTION = {"HUB_ENV": "production", "HUB_DATABASE_URL": "postgresql+psycopg://db/hub",
              "HUB_REDIS_URL": "redis://redis:6379/0", "HUB_ADMIN_TOKEN": "a-production-admin-token-of-32-chars"}


def test_production_refuses_plain_http_and_private_address_api_urls():
    bad = {"HUB_KLAVIYO_API_URL": "http://a.klaviyo.com", "HUB_STRIPE_API_URL": "https://127.0.0.1:9999",
           "HUB_HUBSPOT_API_URL": "https://2130706433", "HUB_ACTIVECAMPAIGN_API_URL": "https://[::ffff:10.0.0.5]",
           "HUB_CHARGEBEE_API_URL": "https://169.254.169.254/latest"}
    with pytest.raises(ConfigError) as err:
        load_settings(environ={**PRODUCTION, **bad})
    assert sorted(p.split(":")[0] for p in err.value.problems) == sorted(bad)
    assert "https" in str(err.value) and "loopback" in str(err.value) and "metadata" in str(err.value)


def test_private_api_urls_are_allowed_when_explicit_or_outside_production():
    private = {"HUB_KLAVIYO_API_URL": "http://127.0.0.1:8001", "HUB_STRIPE_API_URL": "https://10.1.2.3"}
    assert load_settings(environ=private)["HUB_KLAVIYO_API_URL"] == "http://127.0.0.1:8001"
    allowed = load_settings(environ={**PRODUCTION, **private, "HUB_ALLOW_INSECURE_API_URLS": "true"})
    assert allowed["HUB_STRIPE_API_URL"] == "https://10.1.2.3"
    assert load_settings(environ=PRODUCTION)["HUB_KLAVIYO_API_URL"] == "https://a.klaviyo.com"  # the defaults pass
