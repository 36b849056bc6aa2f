r"""``convostore layout``: lay convostore's tables out beyond one plain database.

```sh
convostore migrate --url mysql://app:pw@10.0.0.10/agents upgrade head   # each node first
convostore migrate --url mysql://app:pw@10.0.0.11/agents upgrade head
convostore layout spider --url mysql://app:pw@10.0.0.1/agents \
    --node node0=mysql://app:pw@10.0.0.10:3306/agents \
    --node node1=mysql://app:pw@10.0.0.11:3306/agents
```
"""

from __future__ import annotations

import asyncio

import click

from convostore import ConfigurationError, engine_from_url

from ._common import about_database, reports_errors

__all__ = ["layout"]


@click.group("layout", short_help="Shard the tables (MariaDB Spider).")
def layout() -> None:
    """Lay convostore's tables out over several servers. See docs/scaling.md."""


def _node(value: str) -> tuple[str, str]:
    name, sep, url = value.partition("=")
    if not sep or not name or not url:
        raise click.BadParameter(f"expected NAME=URL, got {value!r}", param_hint="--node")
    return name.strip(), url.strip()


@layout.command(short_help="Make (or remake) a MariaDB Spider head over data nodes.")
@click.option("--url", envvar="CONVOSTORE_URL", required=True, help="The head's URL.")
@click.option(
    "--node",
    "nodes",
    multiple=True,
    required=True,
    metavar="NAME=URL",
    help="A data node as the head reaches it, in partition order (repeat: one per node).",
)
@click.option("--sessions-table", envvar="CONVOSTORE_SESSIONS_TABLE", default="agent_sessions")
@click.option("--messages-table", envvar="CONVOSTORE_MESSAGES_TABLE", default="agent_messages")
@click.option("--version-table", envvar="CONVOSTORE_VERSION_TABLE", default="")
@click.option("--sql", is_flag=True, help="Print the head's table DDL instead of running it.")
@reports_errors(missing_tables_hint="run `convostore migrate upgrade head` on each node first")
def spider(
    url: str,
    nodes: tuple[str, ...],
    sessions_table: str,
    messages_table: str,
    version_table: str,
    sql: bool,
) -> None:
    """Define the nodes on the head and create the store's Spider tables there.

    Each node is an ordinary convostore database at one revision (upgrade every node with
    `convostore migrate upgrade head` first); the head's tables are partitioned by session
    id over them, in the order given, and the head records the nodes' revision. Run it
    again after upgrading the nodes: the head's tables hold no rows.
    """
    from convostore import build_tables
    from convostore.layouts import SpiderNode, create_spider_head, spider_head_ddl

    parsed = [SpiderNode.from_url(*_node(value)) for value in nodes]
    if sql:
        tables = build_tables(sessions_table, messages_table)
        for statement in spider_head_ddl(tables, parsed):
            click.echo(f"{statement};\n")
        return
    about_database(url)

    async def make() -> str:
        head = engine_from_url(url)
        try:
            return await create_spider_head(
                head,
                nodes=parsed,
                sessions_table=sessions_table,
                messages_table=messages_table,
                version_table=version_table,
            )
        finally:
            await head.dispose()

    if not parsed:
        raise ConfigurationError("give at least one --node NAME=URL")
    revision = asyncio.run(make())
    names = ", ".join(node.name for node in parsed)
    click.echo(f"Spider head ready over {names}, at revision {revision}.")
