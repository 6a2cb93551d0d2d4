"""The one configuration pattern of every function: environment variables are read once, at cold start,
into a frozen dataclass by that dataclass's ``from_env``; a missing or malformed setting raises
ConfigurationError there, which fails the init phase loudly, never a request. Defaults are stated once, in
the ``from_env`` that reads them.

Python >= 3.9, standard library only (see the package docstring)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class ConfigurationError(RuntimeError):
    """Missing or invalid configuration: raised at cold start, never mapped to a client answer."""


def required(env: Mapping[str, str], names: Iterable[str]) -> None:
    """Raises one error naming every required variable that is missing or empty."""
    missing = [name for name in names if not env.get(name)]
    if missing:
        raise ConfigurationError(f"missing required environment variables: {', '.join(missing)}")


def env_str(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    """A string setting. Without a default it is required (absent or empty fails); with one, the default
    applies only when the variable is absent (an empty value is a value)."""
    if default is None:
        required(env, (name,))
        return env[name]
    return env.get(name, default)


def env_choice(env: Mapping[str, str], name: str, default: str, choices: Iterable[str]) -> str:
    """One of ``choices``; the default applies only when the variable is absent (empty fails)."""
    allowed = tuple(choices)
    value = env.get(name, default)
    if value not in allowed:
        raise ConfigurationError(f"{name}={value!r} must be {' or '.join(repr(c) for c in allowed)}")
    return value


def _number(
    env: Mapping[str, str], name: str, parse: type[int] | type[float], default: float, low: float, high: float
) -> float:
    raw = env.get(name, "")
    try:
        value = parse(raw) if raw else default
    except ValueError:
        kind = "an integer" if parse is int else "a number"
        raise ConfigurationError(f"{name}={raw!r} is not {kind}") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name}={value} must be between {low} and {high}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """An optional numeric setting within [low, high]; malformed or out-of-range values fail at init."""
    return float(_number(env, name, float, default, low, high))


def env_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An optional integer setting within [low, high]; malformed or out-of-range values fail at init."""
    return int(_number(env, name, int, default, low, high))
