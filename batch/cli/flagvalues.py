"""typer's parameter coercion without pydantic for the plain values reroute's flags take.

typer 0.29 turns every command-line value into its parameter's type through a pydantic
``TypeAdapter`` (``typer._adapters``), built the first time a command runs. Importing pydantic
and building a dozen adapters costs ~0.18 s at every start, a fifth of `reroute validate`
(README, Performance, start-up). reroute's flags are strings, paths, whole numbers, plain
decimals, booleans and enums: those are coerced here exactly as typer would, and everything
else, every value these rules do not take at once and every error, goes to typer's own
adapter, so its messages stay word for word typer's.

A speed trick, fenced here: it reaches into typer's private ``_coercion`` module. ``install``
checks that the pieces it needs exist and otherwise leaves typer alone (slower, same result);
``tests/cli/test_flagvalues.py`` compares both ways over every parameter of every command.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

_INT = re.compile(r"-?[0-9]{1,18}")
_DECIMAL = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")


class _Decline(Exception):
    """This value is not one the quick rules take: typer's own adapter decides."""


def _leaf(annotation: Any, info: Any) -> Any:
    """A function turning one value into ``annotation`` as typer would, or None when this
    annotation is not one of the plain kinds (typer's adapter handles all of it)."""
    from typer._param_types import coerce_cli_choice, coerce_cli_path, routes_to_path

    if info.parser is not None or get_origin(annotation) is not None:
        return None
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        choices = list(annotation)
        return lambda value, param, ctx: coerce_cli_choice(
            value, choices=choices, case_sensitive=info.case_sensitive, ctx=ctx
        )
    if annotation is str:
        return lambda value, param, ctx: value if type(value) is str else _decline()
    if annotation is bool:
        return lambda value, param, ctx: value if type(value) is bool else _decline()
    if annotation in (int, float):
        if info.clamp:
            return None
        pattern = _INT if annotation is int else _DECIMAL

        def number(value: Any, param: Any, ctx: Any) -> Any:
            if type(value) is not str or not pattern.fullmatch(value):
                _decline()
            number = annotation(value)
            if (info.min is not None and number < info.min) or (
                info.max is not None and number > info.max
            ):
                _decline()
            return number

        return number
    if routes_to_path(annotation, info):
        path_type = info.path_type
        if path_type is None and isinstance(annotation, type) and issubclass(annotation, Path):
            path_type = annotation
        if not (isinstance(path_type, type) and issubclass(path_type, Path)):
            return None

        def path(value: Any, param: Any, ctx: Any) -> Any:
            if type(value) is not str or not value or "\x00" in value:
                _decline()
            return coerce_cli_path(
                path_type(value), info, path_type=path_type, param=param, ctx=ctx
            )

        return path
    return None


def _decline() -> Any:
    raise _Decline


def _quick(annotation: Any, info: Any) -> Any:
    """``_leaf``, or the same over each item of a ``list[...]`` of a plain kind."""
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        leaf = _leaf(item, info)
        if leaf is None:
            return None
        return lambda values, param, ctx: [leaf(value, param, ctx) for value in values]
    return _leaf(annotation, info)


def install() -> bool:
    """Route typer's parameter coercion through the quick rules; False if typer has changed
    shape and is left as it is."""
    try:
        import typer.core
        from typer._coercion import RuntimeParam, TypeDescriptor
    except ImportError:
        return False
    found = getattr(typer.core, "build_runtime_param", None)
    if found is None or getattr(found, "_reroute_quick", False):
        return found is not None
    typer_build: Callable[[TypeDescriptor], RuntimeParam] = found

    @dataclass(frozen=True)
    class QuickRuntimeParam(RuntimeParam):
        """Coerces by the quick rules; anything they decline goes to typer's adapter."""

        descriptor: TypeDescriptor = field(compare=False)
        quick: Any = field(compare=False)
        full: list[RuntimeParam] = field(default_factory=list, compare=False)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                return self.quick(value, param, ctx)
            except Exception:  # every refusal, worded by typer
                if not self.full:
                    self.full.append(typer_build(self.descriptor))
                return self.full[0]._coerce_value(value, param=param, ctx=ctx)

    def build(descriptor: TypeDescriptor) -> RuntimeParam:
        quick = None
        if descriptor.file_annotation is None:
            quick = _quick(descriptor.annotation, descriptor.parameter_info)
        if quick is None:
            return typer_build(descriptor)
        return QuickRuntimeParam(
            parameter_info=descriptor.parameter_info,
            annotation=descriptor.annotation,
            descriptor=descriptor,
            quick=quick,
        )

    build._reroute_quick = True  # type: ignore[attr-defined]
    typer.core.build_runtime_param = build  # type: ignore[attr-defined]
    return True
