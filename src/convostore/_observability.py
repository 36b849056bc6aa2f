"""Debug logging and optional OpenTelemetry spans for every store operation.

Each operation of [`SessionStore`][convostore.SessionStore] (and of the sessions it hands out)
runs inside ``traced``, which

- logs one record at ``DEBUG`` on the ``convostore`` logger when it ends: the operation, the
  backend, the session id, the item count, the retries and the time taken;
- when ``opentelemetry-api`` is installed (``pip install 'convostore[otel]'``), wraps the
  operation in a client span named ``convostore.<operation>`` with the attributes
  ``db.system``, ``convostore.session_id``, ``convostore.item_count`` and
  ``convostore.retries``. Without an SDK configured by the application the span costs
  next to nothing.

Retries are counted by ``record_retry``, which the transaction runner calls each time it
runs a transaction again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["Trace", "record_retry", "traced"]

logger = logging.getLogger("convostore")

try:
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - depends on the environment
    _otel_trace = None  # type: ignore[assignment]

# A mutable cell per traced operation; tasks started inside it (shielded writes) share it.
_retries: ContextVar[list[int] | None] = ContextVar("convostore_retries", default=None)


def record_retry() -> None:
    """Count one retry against the operation being traced, if any."""
    cell = _retries.get()
    if cell is not None:
        cell[0] += 1


class Trace:
    """What an operation reports about itself while it runs; see ``traced``."""

    def __init__(self, operation: str, backend: str, session_id: str | None) -> None:
        self.operation = operation
        self.backend = backend
        self.session_id = session_id
        self.item_count: int | None = None
        """Items read, written or removed; set by the operation when it knows."""
        self.retries = 0
        """Transactions run again after a transient error."""


@asynccontextmanager
async def traced(
    operation: str, backend: str, session_id: str | None = None
) -> AsyncIterator[Trace]:
    """Log (and, with OpenTelemetry, span) one store operation.

    Args:
        operation: The operation's name, such as ``"add_items"`` or ``"prune"``.
        backend: The dialect name (``"sqlite"``, ``"postgresql"``, ``"mysql"``).
        session_id: The session the operation is about, if one.

    Yields:
        A ``Trace``; set its ``item_count`` before the block ends.
    """
    record = Trace(operation, backend, session_id)
    cell = [0]
    token = _retries.set(cell)
    start = time.perf_counter()
    span_cm: Any = None
    span: Any = None
    if _otel_trace is not None:
        attributes: dict[str, Any] = {"db.system": backend, "convostore.operation": operation}
        if session_id is not None:
            attributes["convostore.session_id"] = session_id
        span_cm = _otel_trace.get_tracer("convostore").start_as_current_span(
            f"convostore.{operation}",
            kind=_otel_trace.SpanKind.CLIENT,
            attributes=attributes,
        )
        span = span_cm.__enter__()
    error: BaseException | None = None
    try:
        yield record
    except BaseException as exc:
        error = exc
        raise
    finally:
        _retries.reset(token)
        record.retries = cell[0]
        elapsed_ms = (time.perf_counter() - start) * 1000
        if span is not None:
            if record.item_count is not None:
                span.set_attribute("convostore.item_count", record.item_count)
            span.set_attribute("convostore.retries", record.retries)
            if error is None:
                span_cm.__exit__(None, None, None)
            else:
                span_cm.__exit__(type(error), error, error.__traceback__)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "convostore: %s backend=%s session=%r items=%s retries=%d %.1fms%s",
                operation,
                backend,
                session_id,
                record.item_count,
                record.retries,
                elapsed_ms,
                "" if error is None else f" failed: {type(error).__name__}",
            )
