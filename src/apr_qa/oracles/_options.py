"""Option value checks shared by the oracle factories.

Playbooks in the upstream dialect quote booleans (``"true"``) and write floats
that YAML 1.1 reads as strings (``1e-5``); these helpers accept both spellings
so a factory sees plain Python values, and raise UsageError for anything else.
"""

from __future__ import annotations

import math

from apr_qa.errors import UsageError

__all__ = ["as_bool", "as_float", "as_int", "as_str", "as_str_list", "one_or_many"]


def as_bool(oracle: str, option: str, value: object) -> bool:
    """A boolean option; accepts ``true``/``false`` strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise UsageError(f"oracle {oracle!r}: option {option!r} must be true or false, got {value!r}")


def as_float(
    oracle: str,
    option: str,
    value: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """A finite number option; accepts numeric strings such as ``"1e-5"``."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise UsageError(f"oracle {oracle!r}: option {option!r} must be a number, got {value!r}")
    if minimum is not None and number < minimum:
        raise UsageError(
            f"oracle {oracle!r}: option {option!r} must be at least {minimum:g}, got {value!r}"
        )
    if maximum is not None and number > maximum:
        raise UsageError(
            f"oracle {oracle!r}: option {option!r} must be at most {maximum:g}, got {value!r}"
        )
    return number


def as_int(
    oracle: str, option: str, value: object, *, minimum: int = 0, maximum: int | None = None
) -> int:
    """An integer option in ``[minimum, maximum]``; accepts ASCII digit strings."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        # ASCII only and short: int() reads other scripts' digits and refuses 4301+ digits.
        if text.lstrip("-").isascii() and text.lstrip("-").isdigit() and len(text) <= 19:
            number = int(text)
    if number is None or number < minimum:
        raise UsageError(
            f"oracle {oracle!r}: option {option!r} must be an integer >= {minimum}, got {_shown(value)}"
        )
    if maximum is not None and number > maximum:
        raise UsageError(
            f"oracle {oracle!r}: option {option!r} must be at most {maximum}, got {_shown(value)}"
        )
    return number


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def as_str(oracle: str, option: str, value: object) -> str:
    """A string option."""
    if not isinstance(value, str):
        raise UsageError(f"oracle {oracle!r}: option {option!r} must be a string, got {value!r}")
    return value


def as_choice(oracle: str, option: str, value: object, choices: tuple[str, ...]) -> str:
    """A string that must be one of ``choices``."""
    text = as_str(oracle, option, value)
    if text not in choices:
        raise UsageError(
            f"oracle {oracle!r}: option {option!r} must be one of {', '.join(choices)}, got {text!r}"
        )
    return text


def as_str_list(oracle: str, option: str, value: object) -> list[str]:
    """A list of strings; a single string counts as a list of one."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise UsageError(
        f"oracle {oracle!r}: option {option!r} must be a string or a list of strings, got {value!r}"
    )


def one_or_many(
    oracle: str, single: tuple[str, object], many: tuple[str, object]
) -> list[str] | None:
    """Merge a ``value``/``values`` pair of options; None when neither was given."""
    (single_name, single_value), (many_name, many_value) = single, many
    if single_value is not None and many_value is not None:
        raise UsageError(f"oracle {oracle!r}: give {single_name!r} or {many_name!r}, not both")
    if single_value is not None:
        return [as_str(oracle, single_name, single_value)]
    if many_value is not None:
        values = as_str_list(oracle, many_name, many_value)
        if not values:
            raise UsageError(f"oracle {oracle!r}: option {many_name!r} must not be empty")
        return values
    return None
