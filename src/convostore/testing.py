"""Test an agent without a model provider: a scripted Agents SDK model and its output items.

Needs the Agents SDK (``pip install 'convostore[agents]'``); no network and no API key:

```python
from agents import Agent, Runner
from convostore.testing import ScriptedModel, message

model = ScriptedModel([[message("Hello!")], [message("Hello again!")]])
agent = Agent(name="assistant", model=model)
result = await Runner.run(agent, "Hi", session=session)
assert result.final_output == "Hello!"
assert model.inputs[0][-1] == {"role": "user", "content": "Hi"}
```

[`ScriptedModel`][convostore.testing.ScriptedModel] answers each request from a script: a list of
outputs, or a [`Responder`][convostore.testing.Responder] that reads the request's input (the
history the session handed back and the new turn). [`message`][convostore.testing.message],
[`function_call`][convostore.testing.function_call] and [`reasoning`][convostore.testing.reasoning]
build the output items a script returns. ``convostore.demo`` runs its conversation on this model.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from .errors import MissingDependencyError

try:
    from agents.items import (
        ModelResponse,
        TResponseInputItem,
        TResponseOutputItem,
        TResponseStreamEvent,
    )
    from agents.models.interface import Model
    from agents.usage import Usage
    from openai.types.responses import (
        Response,
        ResponseCompletedEvent,
        ResponseCreatedEvent,
        ResponseFunctionToolCall,
        ResponseOutputItemAddedEvent,
        ResponseOutputItemDoneEvent,
        ResponseOutputMessage,
        ResponseOutputText,
        ResponseTextDeltaEvent,
    )
    from openai.types.responses.response_reasoning_item import ResponseReasoningItem, Summary
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess test
    raise MissingDependencyError(
        "convostore.testing needs the OpenAI Agents SDK (openai-agents): "
        "pip install 'convostore[agents]'",
        package="agents",
        extra="pip install 'convostore[agents]'",
    ) from exc

__all__ = ["Responder", "ScriptedModel", "function_call", "message", "reasoning"]

Responder = Callable[[list[dict[str, Any]]], Sequence[TResponseOutputItem]]
"""A script: given the model's whole input (history and new turn), return its output items."""


def _next_id(prefix: str) -> str:
    # Unique across runs and processes, like a provider's ids: the stored history keeps them.
    return f"{prefix}_{uuid.uuid4().hex}"


def message(text: str) -> ResponseOutputMessage:
    """An assistant message output item with ``text``."""
    return ResponseOutputMessage(
        id=_next_id("msg"),
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def function_call(name: str, arguments: dict[str, Any]) -> ResponseFunctionToolCall:
    """A function tool call output item: the runner calls tool ``name`` with ``arguments``."""
    return ResponseFunctionToolCall(
        id=_next_id("fc"),
        call_id=_next_id("call"),
        type="function_call",
        name=name,
        arguments=json.dumps(arguments),
        status="completed",
    )


def reasoning(summary: str) -> ResponseReasoningItem:
    """A reasoning output item whose summary is ``summary``."""
    return ResponseReasoningItem(
        id=_next_id("rs"),
        type="reasoning",
        summary=[Summary(type="summary_text", text=summary)],
    )


class ScriptedModel(Model):
    """An Agents SDK model that answers from a script: no network, no API key.

    Args:
        script: Either a [`Responder`][convostore.testing.Responder] (called with each request's
            input items), or the outputs of successive requests, in order.
        record_inputs: Keep every request's input in
            [`inputs`][convostore.testing.ScriptedModel.inputs], so a test can check what history
            the runner sent. Turn it off in a long-running server.

    Only the input of a request counts: the model settings, tools, output schema, handoffs,
    tracing and prompt the runner passes with it (the rest of the Agents SDK's ``Model``
    interface) are accepted and ignored.
    """

    def __init__(
        self,
        script: Responder | Iterable[Sequence[TResponseOutputItem]],
        *,
        record_inputs: bool = True,
    ) -> None:
        if callable(script):
            self._responder: Responder | None = script
            self._outputs: list[Sequence[TResponseOutputItem]] = []
        else:
            self._responder = None
            self._outputs = list(script)
        self._record_inputs = record_inputs
        self.inputs: list[list[dict[str, Any]]] = []
        """The input items of each request, in order (if ``record_inputs``)."""

    def _respond(self, input: str | list[TResponseInputItem]) -> list[TResponseOutputItem]:
        if isinstance(input, str):
            items: list[dict[str, Any]] = [{"role": "user", "content": input}]
        else:
            items = [dict(item) for item in input]
        if self._record_inputs:
            self.inputs.append(items)
        if self._responder is not None:
            return list(self._responder(items))
        if not self._outputs:
            raise RuntimeError("ScriptedModel: the script has no output left for this request")
        return list(self._outputs.pop(0))

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        *settings: Any,
        **more_settings: Any,
    ) -> ModelResponse:
        """Return the script's next output as one response."""
        output = self._respond(input)
        return ModelResponse(output=output, usage=Usage(requests=1), response_id=None)

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        *settings: Any,
        **more_settings: Any,
    ) -> AsyncIterator[TResponseStreamEvent]:
        """Stream the script's next output: created, each item (text as deltas), completed."""
        output = self._respond(input)
        response = Response(
            id=_next_id("resp"),
            created_at=0,
            model="scripted",
            object="response",
            output=[],
            tool_choice="auto",
            tools=[],
            parallel_tool_calls=False,
            status="in_progress",
        )
        sequence = itertools.count()
        yield ResponseCreatedEvent(
            type="response.created", response=response, sequence_number=next(sequence)
        )
        for index, item in enumerate(output):
            yield ResponseOutputItemAddedEvent(
                type="response.output_item.added",
                item=item,
                output_index=index,
                sequence_number=next(sequence),
            )
            if isinstance(item, ResponseOutputMessage):
                for content_index, part in enumerate(item.content):
                    if isinstance(part, ResponseOutputText):
                        for word in re.findall(r"\S+\s*", part.text):
                            yield ResponseTextDeltaEvent(
                                type="response.output_text.delta",
                                item_id=item.id,
                                output_index=index,
                                content_index=content_index,
                                delta=word,
                                logprobs=[],
                                sequence_number=next(sequence),
                            )
            yield ResponseOutputItemDoneEvent(
                type="response.output_item.done",
                item=item,
                output_index=index,
                sequence_number=next(sequence),
            )
        yield ResponseCompletedEvent(
            type="response.completed",
            response=response.model_copy(update={"output": output, "status": "completed"}),
            sequence_number=next(sequence),
        )
