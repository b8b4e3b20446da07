"""The augframe error hierarchy.

Every error raised for bad user input is an :class:`AugframeError` whose message names the input
that is wrong and says how to fix it. Catch ``AugframeError`` to handle all of them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AugframeError(Exception):
    """Base class of every error augframe raises on purpose."""


class ValidationError(AugframeError, ValueError):
    """A value (signal batch, parameter, request) does not meet its contract."""


class RecipeError(AugframeError, ValueError):
    """A recipe file has an unknown key, a wrong type or an unknown plugin name."""


class PluginError(AugframeError, LookupError):
    """A plugin could not be found, loaded or configured."""


class CheckpointError(AugframeError, ValueError):
    """A checkpoint is missing, corrupt, or made for another configuration."""


class DataError(AugframeError, ValueError):
    """An input file or record cannot be read or does not fit the configuration."""


class BankError(AugframeError, ValueError):
    """A synthetic bank is inconsistent or does not match what was asked for."""


def suggest(name: str, valid: Iterable[str]) -> str:
    """Return ' (did you mean X?)' for the closest valid name, or a list of valid names."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f"; valid: {', '.join(valid) if valid else '(none)'}"


def require_choice(field: str, value: str, valid: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``valid``, else raise a ValidationError naming the field."""
    valid = tuple(valid)
    if value not in valid:
        raise ValidationError(
            f"{field}={value!r} is not one of {', '.join(map(repr, valid))}{suggest(value, valid)}"
        )
    return value
