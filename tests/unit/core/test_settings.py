"""sentiment_core.settings: the typed readers behind every function's configuration."""

from __future__ import annotations

import pytest
from sentiment_core.settings import ConfigurationError, env_choice, env_float, env_int, env_str, required


def test_required_names_every_missing_variable() -> None:
    with pytest.raises(ConfigurationError, match="missing required environment variables: A, C"):
        required({"B": "x", "C": ""}, ("A", "B", "C"))


def test_numbers_use_the_default_and_check_the_range() -> None:
    assert env_int({}, "N", 5, 1, 10) == 5
    assert env_float({"F": "0.25"}, "F", 1.0, 0.0, 1.0) == 0.25
    with pytest.raises(ConfigurationError, match="N='x' is not an integer"):
        env_int({"N": "x"}, "N", 5, 1, 10)
    with pytest.raises(ConfigurationError, match="must be between 1 and 10"):
        env_int({"N": "11"}, "N", 5, 1, 10)


def test_strings_and_choices() -> None:
    assert env_str({}, "S", "default") == "default"
    with pytest.raises(ConfigurationError, match="missing required environment variables: S"):
        env_str({}, "S")
    with pytest.raises(ConfigurationError, match="missing required environment variables: S"):
        env_str({"S": ""}, "S")
    assert env_choice({"M": "closed"}, "M", "open", ("open", "closed")) == "closed"
    with pytest.raises(ConfigurationError, match="M='maybe' must be 'open' or 'closed'"):
        env_choice({"M": "maybe"}, "M", "open", ("open", "closed"))


def test_a_default_applies_only_to_an_absent_variable() -> None:
    """An empty value is a value: a fail mode or verdict set to "" fails at cold start instead of quietly
    taking the default (e.g. failing open)."""
    assert env_str({"P": ""}, "P", "training/") == ""
    with pytest.raises(ConfigurationError, match="M='' must be 'open' or 'closed'"):
        env_choice({"M": ""}, "M", "open", ("open", "closed"))
