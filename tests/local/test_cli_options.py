"""`python -m local_stack serve --function-env NAME=VALUE`: only the template's function variables."""

from __future__ import annotations

import argparse

import pytest
from local_stack.cli import function_env_setting, parse_args


def test_a_template_variable_can_be_set_for_a_run():
    args = parse_args(["serve", "--function-env", "PREDICTION_CACHE=off", "--function-env", "RATE_LIMIT_BURST=5"])

    assert args.function_env == [("PREDICTION_CACHE", "off"), ("RATE_LIMIT_BURST", "5")]
    assert parse_args(["serve"]).function_env == []


@pytest.mark.parametrize("value", ["PREDICTION_CACHE", "PREDICTON_CACHE=off", "=off", "AWS_ENDPOINT_URL=http://x"])
def test_anything_else_is_refused(value: str):
    with pytest.raises(argparse.ArgumentTypeError, match="expected NAME=VALUE"):
        function_env_setting(value)
