"""``async with`` for the objects that hold an engine or wrap a session.

Sessions, stores and encrypted sessions all close the same way on leaving an ``async with``
block; each says in its own ``close()`` what closing means for it.
"""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

__all__ = ["AsyncClosing"]

_C = TypeVar("_C", bound="AsyncClosing")


class AsyncClosing:
    """Base class: ``async with obj:`` returns ``obj`` and awaits ``obj.close()`` on exit."""

    async def close(self) -> None:
        """Release what the object holds; subclasses say what that is."""

    async def __aenter__(self: _C) -> _C:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
