"""What a session is configured with: its settings (the Agents SDK's shape) and its retries.

Per-session settings are shaped like the Agents SDK's ``SessionSettings``.

Agent runners read ``session.session_settings.limit`` to decide how much history to load,
and overlay their own settings with ``resolve`` (``RunConfig(session_settings=...)``). The
SDK's wrappers (``EncryptedSession``, ``OpenAIResponsesCompactionSession``) go further and
accept only the SDK's own class or a ``dict``. So a session presents the SDK's
``SessionSettings`` whenever the SDK is importable, and this module's class otherwise.

The SDK is looked up the first time a session's settings are read, never when convostore
is imported: convostore neither imports nor requires the SDK until then.

Input may be ``None``, a ``dict`` such as ``{"limit": 50}``, the SDK's class or this one. It
is validated when the session (or store) is built, and copied: each session owns its
settings object, so changing one session's ``limit`` never changes another's.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from typing import Any, Protocol, runtime_checkable

from ._validate import optional_int, whole_number
from .errors import ConfigurationError, InvalidLimitError

__all__ = [
    "DEFAULT_RETRY",
    "RetryPolicy",
    "SessionSettings",
    "SessionSettingsLike",
    "check_limit",
    "coerce_settings",
    "present_settings",
    "sdk_settings_class",
]

_KEYS = ("limit",)


@runtime_checkable
class SessionSettingsLike(Protocol):
    """Anything with a ``limit`` attribute: this module's class or the Agents SDK's."""

    limit: int | None


@dataclasses.dataclass
class SessionSettings:
    """Settings for a session's operations (used when the Agents SDK is not installed)."""

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
    return optional_int(limit, what, minimum=0, error=InvalidLimitError)


@functools.lru_cache(maxsize=1)
def sdk_settings_class() -> type[Any] | None:
    """Return the Agents SDK's ``SessionSettings`` class, or ``None`` if the SDK is absent.

    Imports the SDK on the first call (and only then); the answer is kept for the process.
    """
    try:
        from agents.memory.session_settings import SessionSettings as SDKSessionSettings
    except ImportError:
        return None
    return SDKSessionSettings


def coerce_settings(
    settings: SessionSettingsLike | dict[str, Any] | None,
    what: str = "session_settings",
) -> SessionSettingsLike:
    """Return a validated copy of ``settings``, owned by the caller.

    The Agents SDK's objects stay of the SDK's class; ``None`` and a ``dict`` become this module's
    [`SessionSettings`][convostore.SessionSettings] (``present_settings`` turns those into the SDK's
    class when the settings are read).

    Raises:
        ConfigurationError: ``settings`` is neither ``None``, a ``dict`` nor settings-like, a
            ``dict`` has a key other than ``limit``, or ``limit`` is not ``None`` or a
            non-negative integer.
    """
    if settings is None:
        return SessionSettings()
    if isinstance(settings, dict):
        unknown = sorted(str(key) for key in settings if key not in _KEYS)
        if unknown:
            raise ConfigurationError(
                f"{what} has unknown keys {unknown}; the settings a session takes are "
                f"{list(_KEYS)}, for example {{'limit': 50}}"
            )
        limit = _checked(settings.get("limit"), what)
        return SessionSettings(limit=limit)
    if not isinstance(settings, SessionSettingsLike):
        raise ConfigurationError(
            f"{what} must be a SessionSettings (convostore's or the Agents SDK's), a dict such "
            f"as {{'limit': 50}}, or None; got {type(settings).__name__}"
        )
    limit = _checked(settings.limit, what)
    if isinstance(settings, SessionSettings):
        return SessionSettings(limit=limit)
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        # The SDK's class (a dataclass): copied as itself, every field kept.
        copied: SessionSettingsLike = dataclasses.replace(settings)
        return copied
    return SessionSettings(limit=limit)


def present_settings(settings: SessionSettingsLike) -> SessionSettingsLike:
    """Return ``settings`` as the Agents SDK's class if the SDK is importable, else as is."""
    sdk_class = sdk_settings_class()
    if sdk_class is None or isinstance(settings, sdk_class):
        return settings
    presented: SessionSettingsLike = sdk_class(limit=settings.limit)
    return presented


def _checked(limit: Any, what: str) -> int | None:
    try:
        return check_limit(limit, f"{what}.limit")
    except InvalidLimitError as exc:
        raise ConfigurationError(str(exc)) from None


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often, and how patiently, a transaction is retried after a transient error.

    A transaction is tried again while both bounds allow it: at most ``attempts`` tries, and
    no new try after ``max_elapsed`` seconds. The defaults ride out a database restart of a
    few seconds. ``RetryPolicy(attempts=1)`` turns retries off.
    """

    attempts: int = 30
    """Tries in all, the first one included."""

    base_delay: float = 0.01
    """Upper bound, in seconds, of the pause before the second try; doubles with each try."""

    max_delay: float = 0.5
    """The longest pause between two tries, in seconds."""

    max_elapsed: float = 10.0
    """Seconds after the first try's start past which no further try is started."""

    def __post_init__(self) -> None:
        whole_number(self.attempts, "RetryPolicy.attempts", minimum=1)
        for name in ("base_delay", "max_delay", "max_elapsed"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigurationError(f"RetryPolicy.{name} must be a number >= 0, got {value!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based): full jitter."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** min(attempt - 1, 60)))


DEFAULT_RETRY = RetryPolicy()
"""The policy sessions use unless given another."""
