"""Per-session settings, shaped like the Agents SDK's ``SessionSettings``.

Agent runners read ``session.session_settings.limit`` to decide how much history to load,
and may overlay their own settings with ``resolve``. convostore accepts the SDK's own
``SessionSettings`` objects as they are, a ``dict`` such as ``{"limit": 50}``, or this class.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

from .errors import ConfigurationError, InvalidLimitError

__all__ = ["SessionSettings", "SessionSettingsLike", "check_limit", "coerce_settings"]


@runtime_checkable
class SessionSettingsLike(Protocol):
    """Anything with a ``limit`` attribute: this module's class or the Agents SDK's."""

    limit: int | None


@dataclasses.dataclass
class SessionSettings:
    """Settings for a session's operations."""

    limit: int | None = None
    """How many of the latest items ``get_items()`` returns when called without a limit;
    ``None`` returns them all."""

    def resolve(self, override: SessionSettingsLike | dict[str, Any] | None) -> SessionSettings:
        """Return new settings: these, with every non-``None`` value of ``override`` on top."""
        if override is None:
            return self
        limit = override.get("limit") if isinstance(override, dict) else override.limit
        return dataclasses.replace(self, limit=self.limit if limit is None else limit)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a plain ``dict``."""
        return dataclasses.asdict(self)


def check_limit(limit: Any, what: str = "limit") -> int | None:
    """Return ``limit`` if it is ``None`` or a non-negative ``int``; raise InvalidLimitError."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidLimitError(f"{what} must be None or an integer >= 0, got {limit!r}")
    return limit


def coerce_settings(
    settings: SessionSettingsLike | dict[str, Any] | None,
) -> SessionSettingsLike:
    """Return settings usable as ``session.session_settings``, keeping SDK objects as they are.

    Raises:
        ConfigurationError: ``settings`` is neither ``None``, a ``dict`` nor settings-like, or
            its ``limit`` is not ``None`` or a non-negative integer.
    """
    if settings is None:
        return SessionSettings()
    if isinstance(settings, dict):
        unknown = set(settings) - {"limit"}
        if unknown:
            raise ConfigurationError(f"unknown session_settings keys: {sorted(unknown)}")
        settings = SessionSettings(limit=settings.get("limit"))
    if not isinstance(settings, SessionSettingsLike):
        raise ConfigurationError(
            f"session_settings must be a SessionSettings, a dict or None, got {settings!r}"
        )
    try:
        check_limit(settings.limit, "session_settings.limit")
    except InvalidLimitError as exc:
        raise ConfigurationError(str(exc)) from None
    return settings
