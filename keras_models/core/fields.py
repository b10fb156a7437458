"""How a setting is declared: a dataclass field with its default, range or choices and help, and
the checks that hold every value to its declaration. The model spec (keras_models.models.spec) and
the recipe and run settings (keras_models.training.settings) are declared with it; the command-line
flags, their `--help` and the docs' table of settings are generated from the same declarations
(keras_models.cli)."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import field

from keras_models.core.errors import ConfigError


def setting(
    default,
    help: str,
    *,
    choices=None,
    min=None,
    max=None,
    above=None,
    below=None,
    flag: bool = True,
    default_text: str | None = None,
):
    """A dataclass field that declares one setting. `min`/`max` are inclusive bounds, `above`
    and `below` exclusive ones. `flag` False: not offered on the command line."""
    meta = {
        "help": help,
        "choices": choices,
        "min": min,
        "max": max,
        "above": above,
        "below": below,
        "flag": flag,
        "default_text": default_text,
    }
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


def field_type(cls, name: str):
    """(base type, optional) of a field, from its annotation."""
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    return (tuple if typing.get_origin(hint) is tuple else hint), optional


def describe(meta: dict, kind) -> str:
    """What a setting accepts, in words: 'an integer in [0, 6]', 'a positive number'."""
    if meta["choices"] is not None:
        return "one of " + ", ".join(meta["choices"])
    if kind is tuple:
        return "comma-separated positive integers"
    noun = "an integer" if kind is int else "a number"
    low = ("[", meta["min"]) if meta["min"] is not None else ("(", meta["above"]) if meta["above"] is not None else None
    high = (
        (meta["max"], "]") if meta["max"] is not None else (meta["below"], ")") if meta["below"] is not None else None
    )
    if low and high:
        return (
            f"{noun} in {low[0]}{low[1]:g}, {high[0]:g}{high[1]}"
            if kind is float
            else f"{noun} in {low[0]}{low[1]}, {high[0]}{high[1]}"
        )
    if low == ("[", 1) and kind is int or low == ("(", 0):
        return f"a positive {'integer' if kind is int else 'number'}"
    if low:
        return f"{noun} {'>=' if low[0] == '[' else '>'} {low[1]:g}"
    return noun


def accepts(meta: dict, value) -> bool:
    """Whether `value` (of the right type) lies in the declared range or choices."""
    if meta["choices"] is not None:
        return value in meta["choices"]
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return (
        (meta["min"] is None or value >= meta["min"])
        and (meta["max"] is None or value <= meta["max"])
        and (meta["above"] is None or value > meta["above"])
        and (meta["below"] is None or value < meta["below"])
    )


def checked(cls, name: str, value):
    """`value` as the setting holds it (lists become tuples, ints floats), or a one-line
    ConfigError that names the setting and what it accepts."""
    kind, optional = field_type(cls, name)
    meta = dataclasses.fields(cls)[[f.name for f in dataclasses.fields(cls)].index(name)].metadata
    label = name.replace("_", " ")
    if value is None and optional:
        return None
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind is tuple:
        if (
            not isinstance(value, (list, tuple))
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
            or not value
        ):
            raise ConfigError(f"{name} must be {describe(meta, kind)}, got {value!r}")
        return tuple(value)
    if kind is float and is_int:
        value = float(value)
    elif (
        kind is bool
        and not isinstance(value, bool)
        or kind is int
        and not is_int
        or kind in (str, float, dict)
        and not isinstance(value, kind)
    ):
        raise ConfigError(f"{name} must be {kind.__name__}, got {value!r}")
    if kind in (int, float, str) and not accepts(meta, value):
        if meta["choices"] is not None:
            raise ConfigError(f"unknown {label} {value!r}; choose {describe(meta, kind)}")
        raise ConfigError(f"{label} must be {describe(meta, kind)}, got {value!r}")
    return value


def check_fields(obj) -> None:
    """Each field of a ModelSpec, Recipe or RunSettings against its declaration."""
    for f in dataclasses.fields(obj):
        object.__setattr__(obj, f.name, checked(type(obj), f.name, getattr(obj, f.name)))
