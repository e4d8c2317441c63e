"""Settings as validated dataclass fields: each field declares what it
accepts, a config breaking a rule cannot be built, and a CLI string becomes
the field's type. The machinery under core/config.py's sections."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any


class SettingsError(ValueError):
    """A setting is unknown or outside what it accepts; the message names it."""


def setting(default: Any, *, low=None, high=None, choices=None, open_low=False):
    return dataclasses.field(
        default=default, metadata={"low": low, "high": high, "choices": choices, "open_low": open_low}
    )


def resolved():
    """A field the project fills in (not a setting): never set from the CLI."""
    return dataclasses.field(default=None, metadata={"settable": False})


def bounds(cls: type, name: str) -> tuple:
    """(low, high) of a numeric field of `cls` (e.g. for a CLI option's range)."""
    rule = next(f for f in dataclasses.fields(cls) if f.name == name).metadata
    return rule["low"], rule["high"]


def allowed(cls: type, name: str) -> str:
    """What field `name` of `cls` accepts, in words (for help and errors)."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    rule = field.metadata
    if rule.get("choices"):
        return "one of " + ", ".join(map(str, rule["choices"]))
    if rule.get("low") is not None:
        opening = "(" if rule["open_low"] else "["
        return f"{opening}{rule['low']}, {rule['high']}]"
    return "any value"


def validate(config) -> None:
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        kind = hints[field.name]
        if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise SettingsError(f"setting {field.name}={value!r} is not a number")
        if kind is int and not float(value).is_integer():
            raise SettingsError(f"setting {field.name}={value!r} is not a whole number")
        rule = field.metadata
        if rule.get("choices") and value not in rule["choices"]:
            raise SettingsError(f"setting {field.name}={value!r}: allowed {allowed(type(config), field.name)}")
        low, high = rule.get("low"), rule.get("high")
        if (
            low is not None
            and not (low < value if rule["open_low"] else low <= value)
            or (high is not None and value > high)
        ):
            raise SettingsError(
                f"setting {field.name}={value!r} is out of range: allowed {allowed(type(config), field.name)}"
            )


def coerce(cls: type, name: str, value: Any, shown: str = "") -> Any:
    """Turn a CLI string into the field's declared type (`shown`: the setting's name in errors)."""
    shown = shown or name
    if not isinstance(value, str):
        return value
    kind = typing.get_type_hints(cls)[name]
    try:
        if kind is bool:
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("1", "true", "yes")
        if kind in (int, float, str):
            return kind(value)
        if kind == tuple[str, ...]:
            return tuple(value.split())
    except ValueError:
        raise SettingsError(f"setting {shown}={value!r} is not a valid {kind.__name__}") from None
    raise SettingsError(f"setting {shown} cannot be set from the command line")
