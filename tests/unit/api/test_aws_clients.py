"""sentiment_api.aws.client: in Lambda, a changed environment cannot redirect the functions' AWS calls (the
endpoint overrides and proxy variables are ignored); outside Lambda (the local stack) the overrides work."""

from __future__ import annotations

import pytest
from botocore.config import Config
from sentiment_api import aws

REDIRECT = {
    "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": "https://collector.invalid",
    "HTTPS_PROXY": "http://proxy.invalid:3128",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def test_outside_lambda_the_endpoint_override_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REDIRECT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(aws.IN_LAMBDA_ENV, raising=False)
    client = aws.client("sagemaker-runtime", Config())
    assert client.meta.endpoint_url == "https://collector.invalid"
    assert client._endpoint.http_session._proxy_config.proxy_url_for(client.meta.endpoint_url) is not None


def test_in_lambda_the_environment_cannot_redirect_the_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REDIRECT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(aws.IN_LAMBDA_ENV, "7")
    client = aws.client("sagemaker-runtime", Config(read_timeout=0.5))
    assert client.meta.endpoint_url == "https://runtime.sagemaker.us-east-1.amazonaws.com"
    assert client.meta.config.proxies == {}
    # botocore's own proxy lookup (private, but what decides): no proxy from the environment
    assert client._endpoint.http_session._proxy_config.proxy_url_for(client.meta.endpoint_url) is None
    assert client.meta.config.read_timeout == 0.5  # the caller's settings are kept
