"""argparse ``type=`` converters shared by the command-line tools (standard library only).

Each converter turns one command-line token into a value or raises
:class:`argparse.ArgumentTypeError`, whose message argparse prints after the option's name
(``argument --nprocs: expected a whole number >= 1, got 'two'``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number >= {minimum}, got {text!r}"
        ) from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    return _whole_number(text, 1)


def nonneg_int(text: str) -> int:
    """A whole number >= 0."""
    return _whole_number(text, 0)


def finite_number(minimum: float = 0.0, *, strict: bool = False) -> Callable[[str], float]:
    """Converter of a finite number >= ``minimum`` (> ``minimum`` when ``strict``)."""

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if value < minimum or (strict and value == minimum):
            sign = ">" if strict else ">="
            raise argparse.ArgumentTypeError(f"expected a number {sign} {minimum}, got {value}")
        return value

    return convert


def or_none(convert: Callable[[str], float]) -> Callable[[str], float | None]:
    """``convert``, or None for the word ``none`` (an option that can be switched off)."""

    def converter(text: str) -> float | None:
        return None if text.strip().lower() == "none" else convert(text)

    converter.__name__ = getattr(convert, "__name__", "value")
    return converter


def dummy_scans(text: str) -> int | str:
    """``auto`` or a whole number >= 0."""
    if text == "auto":
        return "auto"
    try:
        return nonneg_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or a whole number >= 0, got {text!r}"
        ) from None


def acompcor_components(text: str) -> float:
    """A number of components (integer >= 1) or a fraction of variance in (0, 1)."""
    value = finite_number(0.0, strict=True)(text)
    if value >= 1 and value != int(value):
        raise argparse.ArgumentTypeError(
            f"expected a whole number of components (>= 1) or a variance fraction in (0, 1), "
            f"got {text!r}"
        )
    return int(value) if value >= 1 else value


def existing_file(text: str) -> Path:
    """The absolute path of an existing file (``~`` expanded)."""
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"file not found: {text}")
    return path.absolute()


def bids_label(text: str) -> str:
    """A BIDS label, with or without its ``sub-``/``ses-``/``task-`` prefix."""
    value = text.strip()
    for prefix in ("sub-", "ses-", "task-"):
        if value.startswith(prefix):
            value = value[len(prefix):]
    if not value or not value.isalnum():
        raise argparse.ArgumentTypeError(f"labels are alphanumeric, got {text!r}")
    return value


def json_object(text: str) -> dict:
    """JSON given inline, or the path of a JSON file."""
    path = Path(text).expanduser()
    try:
        raw = path.read_text() if path.is_file() else text
        value = json.loads(raw)
    except (json.JSONDecodeError, OSError) as exc:
        raise argparse.ArgumentTypeError(
            f"expected a JSON object or the path of a JSON file, got {text!r} ({exc})"
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def window_length(text: str) -> int:
    """A sliding-window length: a whole number of samples >= 3."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer number of samples, got {text!r}"
        ) from None
    if value < 3:
        raise argparse.ArgumentTypeError(f"must be at least 3 samples, got {value}")
    return value


def correlation_threshold(text: str) -> float:
    """A correlation value in [-1, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [-1, 1], got {text!r}") from None
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [-1, 1], got {value}")
    return value
