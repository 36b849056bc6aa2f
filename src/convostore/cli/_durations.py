"""Durations as people write them: ``30d``, ``12h``, ``90min``, ``6mo``, ``1y``, ``1w2d``."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import click

from ._output import plural

__all__ = ["Duration", "describe_duration", "parse_duration"]

# Every unit a duration may be written in, with its length. Bare "m" and "M" are refused:
# one reader takes them for minutes, another for months (see parse_duration).
_UNITS: dict[str, int] = {}
for _names, _seconds in (
    (("s", "sec", "secs", "second", "seconds"), 1),
    (("min", "mins", "minute", "minutes"), 60),
    (("h", "hr", "hrs", "hour", "hours"), 3600),
    (("d", "day", "days"), 86400),
    (("w", "wk", "wks", "week", "weeks"), 7 * 86400),
    (("mo", "mon", "month", "months"), 30 * 86400),
    (("y", "yr", "yrs", "year", "years"), 365 * 86400),
):
    for _name in _names:
        _UNITS[_name] = _seconds
_DURATION_PART = re.compile(r"(\d+)\s*([a-zA-Z]+)")
_DURATION_HELP = (
    "use numbers with units, such as 30d, 12h, 90min, 6mo, 1y or 1w2d (s, min, h, d, w, "
    "mo = 30 days, y = 365 days; units may be spelled out: 30 days, 6 months)"
)


def parse_duration(text: str) -> dt.timedelta:
    """Return the duration written as ``30d``, ``12h``, ``90min``, ``6mo``, ``1y`` or ``1w2d``.

    Units may be spelled out (``30 days``, ``6 months``); a month is 30 days and a year 365.

    Raises:
        click.BadParameter: The text is not such a duration, uses the ambiguous unit ``m``
            or ``M``, or is zero.
    """
    compact = text.strip()
    parts = _DURATION_PART.findall(compact)
    if not parts or _DURATION_PART.sub("", compact).strip(" ,"):
        raise click.BadParameter(f"{text!r} is not a duration: {_DURATION_HELP}")
    seconds = 0
    for number, unit in parts:
        if unit in ("m", "M"):
            raise click.BadParameter(
                f"{text!r} is ambiguous: write {number}min for minutes or {number}mo for months"
            )
        length = _UNITS.get(unit.lower())
        if length is None:
            raise click.BadParameter(f"{text!r} has an unknown unit {unit!r}: {_DURATION_HELP}")
        seconds += int(number) * length
    if seconds <= 0:
        raise click.BadParameter(f"{text!r} is zero; give a positive duration")
    return dt.timedelta(seconds=seconds)


def describe_duration(duration: dt.timedelta) -> str:
    """Return ``duration`` as people write it: ``30 days``, ``1 day 12 hours``, ``90 minutes``."""
    seconds = int(duration.total_seconds())
    parts = []
    for name, length in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, length)
        if count:
            parts.append(plural(count, name))
    return " ".join(parts) or "0 seconds"


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A click parameter type for ``parse_duration``."""

    name = "duration"

    def convert(self, value: Any, param: Any, ctx: Any) -> dt.timedelta:
        """Parse the option's text."""
        if isinstance(value, dt.timedelta):
            return value
        try:
            return parse_duration(str(value))
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)
