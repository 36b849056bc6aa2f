"""The protocol an agent runner needs from a session store.

It has the same shape as the OpenAI Agents SDK's ``Session`` protocol, so any convostore
session can be passed as ``Runner.run(agent, input, session=...)``; convostore itself does
not import the SDK.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Session"]


@runtime_checkable
class Session(Protocol):
    """A conversation's history: items in the order they were added.

    An item is a JSON object (``dict``), such as the input and output items the Agents SDK
    stores: messages, function calls and their outputs, reasoning items.
    """

    session_id: str
    """The conversation's identifier."""

    async def get_items(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Return the history in order: all of it, or the latest ``limit`` items."""
        ...

    async def add_items(self, items: list[dict[str, Any]]) -> None:
        """Append ``items`` to the history, after everything already there."""
        ...

    async def pop_item(self) -> dict[str, Any] | None:
        """Remove and return the latest item, or ``None`` if there is none."""
        ...

    async def clear_session(self) -> None:
        """Remove every item of this session."""
        ...
