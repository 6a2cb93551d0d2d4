"""Retraining task SmokeTestEndpoint (statemachines/retrain.asl.json): before a new endpoint may be released,
it must answer one clear text per label (sentiment_core.contract.SMOKE_TEXTS) with the expected label, in the
wire format the predict function sends and reads (sentiment_core.wire: the same encoding, the same parser).

Raises SmokeTestFailed (a wrong label, an answer the predict function could not read, an endpoint error) and
ModelUnavailable / ModelTimeout (busy, not ready, unreachable, too slow), which the state machine retries with
backoff by those names (an endpoint that just turned InService may still be warming up)."""

from __future__ import annotations

from typing import Any

from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from sentiment_core import wire
from sentiment_core.contract import SMOKE_TEXTS

from .observability import logger

#: The runtime client: a new endpoint may answer its first requests slowly.
CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 2})


class SmokeTestFailed(Exception):
    """The new endpoint answered, but not what the API needs."""


class ModelUnavailable(Exception):
    """The endpoint is busy, not ready or unreachable: retried by the state machine."""


class ModelTimeout(Exception):
    """The endpoint did not answer in time: retried by the state machine."""


def invoke(client: Any, endpoint_name: str, text: str, correlation_id: str) -> wire.Prediction:
    try:
        response = client.invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType=wire.REQUEST_CONTENT_TYPE,
            Accept=wire.ACCEPT,
            Body=wire.encode_texts([text]),
            CustomAttributes=wire.custom_attributes(correlation_id=correlation_id),
        )
        return wire.parse_answer(response["Body"].read(), response.get("ContentType"), response.get("CustomAttributes"))
    except (ReadTimeoutError, ConnectTimeoutError) as exc:
        raise ModelTimeout(f"{endpoint_name} did not answer in time") from exc
    except EndpointConnectionError as exc:
        raise ModelUnavailable(f"{endpoint_name} cannot be reached") from exc
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in wire.RETRY_LATER_SECONDS:
            raise ModelUnavailable(f"{endpoint_name} answered {code}") from exc
        raise SmokeTestFailed(f"{endpoint_name} answered the error {code}") from None
    except ConnectionClosedError:
        raise SmokeTestFailed(f"{endpoint_name} closed the connection") from None
    except wire.WireError:
        raise SmokeTestFailed(
            f"{endpoint_name}: the answer is not in the format the predict function reads (docs/architecture.md)"
        ) from None


def smoke_test(endpoint_name: str, client: Any) -> dict[str, Any]:
    results, failures = [], []
    for expected, text in SMOKE_TEXTS.items():
        answer = invoke(client, endpoint_name, text, f"smoke-test-{endpoint_name}-{expected}")
        results.append(
            {
                "expected": expected,
                "got": answer.label,
                "scores": answer.rounded().scores,
                "model_version": answer.model_version,
            }
        )
        if answer.label != expected:
            failures.append(f"{expected} probe answered {answer.label}")
    if failures:
        raise SmokeTestFailed(f"{endpoint_name}: {'; '.join(failures)}")
    logger.info("smoke test passed", extra={"endpoint": endpoint_name})
    return {"endpoint_name": endpoint_name, "probes": results}
