"""The items every implementation stores: the same realistic agent turn, over and over.

A turn of an agent run with a tool: the user's message, the model's function call, the
function's output (about 1 KB, the largest item) and the assistant's answer, in the shapes the
OpenAI Responses API uses. Each item carries a tag so the concurrent workload can check order.
"""

from __future__ import annotations

from typing import Any

_OUTPUT = (
    '{"city":"Paris","country":"FR","forecast":['
    + ",".join(
        f'{{"day":{day},"summary":"partly cloudy, light wind from the west","high_c":{18 + day},'
        f'"low_c":{9 + day},"precip_mm":{day * 0.4:.1f}}}'
        for day in range(9)
    )
    + "]}"
)


def item(index: int, tag: str = "") -> dict[str, Any]:
    """Return item number ``index`` of the endless conversation (four shapes, in turn)."""
    kind = index % 4
    call_id = f"call_{tag}{index // 4:08d}"
    if kind == 0:
        return {
            "role": "user",
            "content": f"[{tag}#{index}] What will the weather be like in Paris this week?",
        }
    if kind == 1:
        return {
            "type": "function_call",
            "id": f"fc_{tag}{index:010d}",
            "call_id": call_id,
            "name": "get_forecast",
            "arguments": '{"city":"Paris","days":9}',
            "status": "completed",
        }
    if kind == 2:
        return {"type": "function_call_output", "call_id": call_id, "output": _OUTPUT}
    return {
        "id": f"msg_{tag}{index:010d}",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [
            {
                "type": "output_text",
                "text": "Mild and mostly dry: highs from 18 to 26 °C, a little rain midweek.",
                "annotations": [],
            }
        ],
    }


def items(start: int, count: int, tag: str = "") -> list[dict[str, Any]]:
    """Return ``count`` consecutive items from ``start``."""
    return [item(i, tag) for i in range(start, start + count)]
