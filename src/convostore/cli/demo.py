"""``convostore demo``: watch an agent remember a conversation across runs.

The conversation runs through the OpenAI Agents SDK's real runner with a scripted model (no
network, no API key) and is stored by convostore; run the command twice and the second run
continues where the first stopped.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from types import ModuleType
from typing import Any

import click
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from convostore import MissingDependencyError

from ._common import about_database, reports_errors

__all__ = ["demo"]

_INSTALL_HINT = "pip install 'convostore[agents]'"


@click.command(short_help="Run a scripted agent conversation and store it.")
@click.option(
    "--url",
    envvar="CONVOSTORE_URL",
    default="sqlite:///convostore-demo.db",
    show_default=True,
    help="Database URL (also CONVOSTORE_URL): sqlite:///file.db, postgresql://..., mysql://...",
)
@click.option(
    "--session-id",
    default="convostore-demo",
    show_default=True,
    help="The conversation to continue.",
)
@click.option("--reset", is_flag=True, help="Forget the stored conversation and start anew.")
@reports_errors
def demo(url: str, session_id: str, reset: bool) -> None:
    """Run a short agent conversation (with a tool call) and store it; run again to continue."""
    module = _load_demo()
    about_database(url)
    console = Console(highlight=False)
    asyncio.run(
        module.run_demo(
            url,
            session_id=session_id,
            reset=reset,
            on_start=lambda run: _print_start(console, run),
            on_turn=lambda turn: _print_turn(console, turn),
        )
    )
    console.print(
        "\n[bold green]Stored.[/] Run [bold]convostore demo[/] again: the agent continues this "
        "conversation, from a new process."
    )


def _load_demo() -> ModuleType:
    try:
        return importlib.import_module("convostore.demo")
    except ModuleNotFoundError as exc:
        if exc.name not in ("agents", "openai"):
            raise
        raise MissingDependencyError(
            f"the demo needs the OpenAI Agents SDK (openai-agents), which is not installed: "
            f"{_INSTALL_HINT}",
            package=exc.name or "agents",
            extra=_INSTALL_HINT,
        ) from exc


def _print_start(console: Console, run: Any) -> None:
    if run.earlier_items:
        status = (
            f"[bold]Continuing the stored conversation[/]: {run.earlier_items} items from "
            "earlier runs were read back from the database."
        )
    else:
        status = "[bold]New conversation[/]: nothing stored yet for this session."
    console.print(
        Panel(
            f"database  {run.url}\nsession   {run.session_id}\n"
            "agent     Agents SDK runner, scripted model (no network, no API key)"
            f"\n\n{status}",
            title="convostore demo",
            expand=False,
        )
    )


def _print_turn(console: Console, turn: Any) -> None:
    console.print()
    for item in turn.items:
        label, style, text = describe_item(item)
        line = Text(f"{label:>12}  ", style=f"bold {style}")
        line.append(text, style=style if label != "assistant" else "")
        console.print(line)


def describe_item(item: dict[str, Any]) -> tuple[str, str, str]:
    """Return ``(label, rich style, text)`` for one stored item of the Agents SDK."""
    kind = item.get("type")
    if kind == "function_call":
        arguments = item.get("arguments", "")
        try:
            shown = ", ".join(f"{k}={v!r}" for k, v in json.loads(arguments).items())
        except (ValueError, AttributeError):
            shown = str(arguments)
        return "tool call", "yellow", f"{item.get('name')}({shown})"
    if kind == "function_call_output":
        return "tool result", "yellow", str(item.get("output"))
    if kind == "reasoning":
        summary = " ".join(str(part.get("text", "")) for part in item.get("summary", []))
        return "reasoning", "dim", summary
    role = item.get("role")
    content = item.get("content")
    if isinstance(content, list):
        content = "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    if role == "user":
        return "you", "cyan", str(content)
    if role == "assistant":
        return "assistant", "green", str(content)
    return str(kind or role or "item"), "dim", json.dumps(item, ensure_ascii=False)
