import pytest
from prediction.config import PredictSettings
from sentiment_core.settings import ConfigurationError

load_settings = PredictSettings.from_env

BASE = {
    "SAGEMAKER_ENDPOINT_NAME": "ep",
    "STAGE": "dev",
    "POWERTOOLS_SERVICE_NAME": "sentiment-api",
    "POWERTOOLS_METRICS_NAMESPACE": "SentimentApi",
    "RATE_LIMIT_TABLE_NAME": "limits",
}


def test_defaults() -> None:
    settings = load_settings(BASE)
    assert settings.endpoint.name == "ep"
    endpoint = settings.endpoint
    assert (endpoint.connect_timeout_s, endpoint.read_timeout_s, endpoint.max_attempts) == (0.25, 0.5, 2)
    assert settings.api.rate_limit.per_minute == 100
    assert (settings.api.rate_limit.burst, settings.api.rate_limit.fail_open) == (200, True)


def test_missing_variables_are_all_named() -> None:
    with pytest.raises(ConfigurationError, match="SAGEMAKER_ENDPOINT_NAME, STAGE"):
        load_settings({"POWERTOOLS_SERVICE_NAME": "x", "POWERTOOLS_METRICS_NAMESPACE": "y"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SAGEMAKER_READ_TIMEOUT_S", "abc"),
        ("SAGEMAKER_READ_TIMEOUT_S", "0"),
        ("SAGEMAKER_MAX_ATTEMPTS", "9"),
        ("RATE_LIMIT_FAIL_MODE", "maybe"),
    ],
)
def test_malformed_values_fail(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        load_settings(BASE | {name: value})


def test_settings_are_frozen() -> None:
    settings = load_settings(BASE)
    with pytest.raises(AttributeError):
        settings.endpoint = "other"  # type: ignore[misc]


def test_handler_import_fails_loudly_without_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.helpers import load_function

    with pytest.raises(ConfigurationError):
        load_function("predict", {"SAGEMAKER_ENDPOINT_NAME": ""})


def test_an_empty_fail_mode_fails_instead_of_failing_open() -> None:
    with pytest.raises(ConfigurationError, match="RATE_LIMIT_FAIL_MODE"):
        load_settings(BASE | {"RATE_LIMIT_FAIL_MODE": ""})
