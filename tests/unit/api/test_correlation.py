import pytest
from sentiment_api.correlation import correlation_id_from_event


@pytest.mark.parametrize("value", ["c0ffee00-1234-4abc-9def-000000000001", "abcdefgh", "a" * 128, "req:1.2_3-4"])
def test_well_formed_incoming_id_is_kept(value: str) -> None:
    event = {"headers": {"x-correlation-id": value}, "requestContext": {"requestId": "gw-id"}}
    assert correlation_id_from_event(event) == value


@pytest.mark.parametrize(
    "value", ["", "short", "a" * 129, "has space inside", "new\nline-injection", "<script>xx", "-leading-dash"]
)
def test_malformed_incoming_id_is_replaced_by_the_request_id(value: str) -> None:
    event = {"headers": {"x-correlation-id": value}, "requestContext": {"requestId": "gw-id"}}
    assert correlation_id_from_event(event) == "gw-id"


def test_header_name_is_case_insensitive() -> None:
    event = {"headers": {"X-Correlation-Id": "abcdefgh-1"}, "requestContext": {"requestId": "gw-id"}}
    assert correlation_id_from_event(event) == "abcdefgh-1"


def test_no_headers_no_request_id_still_gives_an_id() -> None:
    assert len(correlation_id_from_event({})) == 36
