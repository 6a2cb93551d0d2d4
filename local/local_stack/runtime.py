"""What the Lambda Python runtime does before it calls a handler, for the local stack, the tests and the
benchmarks: the function's code folder and its layers on sys.path (as /var/task and /opt/python), then the
handler module imported. The one module loader of the project.

Every function's entry point is called ``app.py``; each is imported under its own module name
(``<logical id>.app``), so several functions can live in one process."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .template import Function

Handler = Callable[[dict[str, Any], Any], Any]


def add_to_path(function: Function) -> None:
    for directory in (function.code_dir, *function.layer_dirs):
        if str(directory) not in sys.path:
            sys.path.append(str(directory))


def import_module(function: Function, module_name: str | None = None) -> ModuleType:
    """Imports the function's handler module (with the environment the caller has set)."""
    add_to_path(function)
    name = module_name or f"{function.logical_id}.{function.module}"
    spec = importlib.util.spec_from_file_location(name, function.code_dir / f"{function.module}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {function.handler} from {function.code_dir}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_handler(function: Function, module_name: str | None = None) -> Handler:
    handler: Handler = getattr(import_module(function, module_name), function.attribute)
    return handler
