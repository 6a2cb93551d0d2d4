"""The parameter overrides of one `sam deploy`: samconfig.toml's list for the environment, then the given
``Key=Value`` pairs (later wins), one per line in SAM's ``Key=Value`` form (an empty value as ``Key=""``).

`sam deploy --parameter-overrides` on the command line replaces samconfig.toml's whole list, so deploy/deploy.sh
passes this merged list instead. Parameters in neither keep their deployed values: SAM sends
``UsePreviousValue`` for every template parameter it is not given (samcli/commands/deploy/deploy_context.py,
``merge_parameters``), which is how the endpoint a model release set survives a later deploy.

    python3 deploy/parameters.py <env> [Key=Value ...]
"""

from __future__ import annotations

import shlex
import sys
import tomllib
from pathlib import Path

SAMCONFIG = Path(__file__).resolve().parent.parent / "samconfig.toml"


def samconfig_overrides(env: str, path: Path = SAMCONFIG) -> list[str]:
    config = tomllib.loads(path.read_text("utf-8"))
    value = config.get(env, {}).get("deploy", {}).get("parameters", {}).get("parameter_overrides", [])
    return shlex.split(value) if isinstance(value, str) else list(value)


def merged(env: str, given: list[str], path: Path = SAMCONFIG) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in [*samconfig_overrides(env, path), *given]:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise SystemExit(f"not a Key=Value parameter override: {pair!r}")
        values[key] = "" if value in ('""', "''") else value
    return values


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit(__doc__)
    for key, value in merged(argv[0], argv[1:]).items():
        if value == "":
            print(f'{key}=""')
        elif any(c.isspace() for c in value):
            print(f'{key}="{value}"')  # SAM splits an unquoted value at spaces
        else:
            print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
