"""The ``spider`` layout: the storage suite on a MariaDB Spider head over two data nodes.

Three private MariaDB servers (tests/_servers.py) run from the machine's own server binary,
under temporary directories on free ports: two data nodes, each with convostore's ordinary
tables (``create_tables``: InnoDB, foreign keys), and a head whose tables are Spider tables
partitioned by ``session_id`` over the nodes, made by the product's
``convostore.layouts.create_spider_head``.

The Spider plugin is not installed on the machine (installing Debian's package would make
the shared server load it at its next restart). Its package, of the server's own version,
is fetched with ``apt-get download`` into a cache directory (``CONVOSTORE_SPIDER_CACHE``,
default ``~/.cache/convostore-tests/spider``) and unpacked with ``dpkg -x``; the head gets a
plugin directory of links to the server's plugins and to ``ha_spider.so``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from convostore import Tables, create_tables, engine_from_url
from convostore.layouts import SpiderNode, create_spider_head, drop_spider_head

from ._databases import skip_or_fail
from ._layouts import register
from ._servers import PrivateMariaDB, mariadb_server_binary
from ._stores import drop_tables

PACKAGE = "mariadb-plugin-spider"
SERVER_PLUGIN_DIR = Path("/usr/lib/mysql/plugin")
NODES = ("node0", "node1")

HOW_TO_FETCH = (
    f"fetch it by hand: `cd DIR && apt-get download {PACKAGE}=VERSION && dpkg -x *.deb .` "
    f"(VERSION: `dpkg-query -W -f='${{Version}}' mariadb-server-core`), then set "
    f"CONVOSTORE_SPIDER_PLUGIN=DIR/usr/lib/mysql/plugin/ha_spider.so; never `apt-get install` "
    f"it, which would make the shared server load Spider"
)


def _server_version() -> str:
    """The Debian version of the package that owns the machine's MariaDB server binary."""
    binary = mariadb_server_binary()
    if binary is None:
        skip_or_fail("no MariaDB server binary (mariadbd); the spider layout starts its own")
    owner = subprocess.run(["dpkg", "-S", os.path.realpath(binary)], capture_output=True, text=True)
    package = owner.stdout.split(":", 1)[0].strip() if owner.returncode == 0 else ""
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package or "mariadb-server"],
        capture_output=True,
        text=True,
    )
    if version.returncode != 0 or not version.stdout.strip():
        skip_or_fail(f"cannot tell the MariaDB server's package version; {HOW_TO_FETCH}")
    return version.stdout.strip()


def spider_plugin() -> Path:
    """``ha_spider.so`` of the server's version: given, cached, or downloaded and unpacked."""
    given = os.environ.get("CONVOSTORE_SPIDER_PLUGIN")
    if given:
        if not os.path.isfile(given):
            skip_or_fail(f"CONVOSTORE_SPIDER_PLUGIN={given} is not a file")
        return Path(given)
    version = _server_version()
    cache = Path(
        os.environ.get("CONVOSTORE_SPIDER_CACHE")
        or Path.home() / ".cache" / "convostore-tests" / "spider"
    ) / version.replace(":", "_")
    plugin = cache / "unpacked" / "usr" / "lib" / "mysql" / "plugin" / "ha_spider.so"
    if plugin.is_file():
        return plugin
    cache.mkdir(parents=True, exist_ok=True)
    try:
        download = subprocess.run(
            ["apt-get", "download", f"{PACKAGE}={version}"],
            cwd=cache,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        skip_or_fail(f"cannot download {PACKAGE} ({exc}); {HOW_TO_FETCH}")
    debs = sorted(cache.glob(f"{PACKAGE}_*.deb"))
    if download.returncode != 0 or not debs:
        why = download.stderr.strip().splitlines()[-1:] or ["no package"]
        skip_or_fail(f"`apt-get download {PACKAGE}={version}` failed ({why[0]}); {HOW_TO_FETCH}")
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(cache / "unpacked")], check=True)
    if not plugin.is_file():
        skip_or_fail(f"{debs[-1].name} holds no ha_spider.so; {HOW_TO_FETCH}")
    return plugin


def plugin_dir(spider: Path) -> str:
    """A temporary plugin directory: links to the server's own plugins and to ``spider``."""
    directory = tempfile.mkdtemp(prefix="convostore-spider-plugins-")
    for plugin in SERVER_PLUGIN_DIR.iterdir():
        os.symlink(plugin, os.path.join(directory, plugin.name))
    os.symlink(spider, os.path.join(directory, "ha_spider.so"))
    return directory


class SpiderLayout:
    """A Spider head and two data nodes, each a private MariaDB server (see the module)."""

    name = "spider"
    backend = "mysql"

    def __init__(self) -> None:
        self.servers: list[PrivateMariaDB] = []
        self.head: PrivateMariaDB | None = None
        self.plugins: str | None = None
        self.node_engines: list[AsyncEngine] = []
        self.nodes: list[SpiderNode] = []

    async def start(self) -> str:
        """Start the nodes and the head, install Spider on the head; return the head's URL."""
        if self.head is not None:
            return self.head.url
        spider = await asyncio.to_thread(spider_plugin)
        self.plugins = plugin_dir(spider)
        for name in NODES:
            node = await asyncio.to_thread(PrivateMariaDB, prefix=f"convostore-spider-{name}-")
            self.servers.append(node)
            self.nodes.append(SpiderNode(name, "127.0.0.1", node.port, "root", "", "test"))
            self.node_engines.append(engine_from_url(node.url))
        self.head = await asyncio.to_thread(
            PrivateMariaDB,
            [f"--plugin-dir={self.plugins}", "--plugin-maturity=unknown"],
            prefix="convostore-spider-head-",
        )
        self.servers.append(self.head)
        head = engine_from_url(self.head.url)
        try:
            async with head.connect() as conn:
                await conn.exec_driver_sql("INSTALL SONAME 'ha_spider'")
                # mariadb-install-db lets every account create and drop tables in `test`; a
                # production head gives an application's role no DDL (test_least_privilege).
                await conn.exec_driver_sql("REVOKE ALL PRIVILEGES ON test.* FROM PUBLIC")
        finally:
            await head.dispose()
        return self.head.url

    async def create_tables(self, engine: AsyncEngine, tables: Tables) -> None:
        """Create ``tables`` on every node, then their Spider tables on the head."""
        for node in self.node_engines:
            await create_tables(node, tables)
        await create_spider_head(
            engine,
            nodes=self.nodes,
            sessions_table=tables.sessions.name,
            messages_table=tables.messages.name,
        )

    async def drop_tables(self, engine: AsyncEngine, tables: Tables) -> None:
        """Drop the head's Spider tables, then the tables on every node."""
        await drop_spider_head(
            engine, sessions_table=tables.sessions.name, messages_table=tables.messages.name
        )
        for node in self.node_engines:
            await drop_tables(node, tables)

    async def stop(self) -> None:
        """Stop every server by its process id and remove the directories."""
        for node in self.node_engines:
            await node.dispose()
        for server in reversed(self.servers):
            await asyncio.to_thread(server.destroy)
        if self.plugins is not None:
            shutil.rmtree(self.plugins, ignore_errors=True)
        self.servers.clear()
        self.head = None


NOT_ON_SPIDER = {
    "test_listing.py::test_a_keyset_page_is_a_range_of_the_index[spider-user]": (
        "a listing of one user's sessions spans every node: the head's EXPLAIN is its plan "
        "for merging the nodes' rows (a filesort of what each node returns), not an index "
        "range scan; each node runs the plain mysql case's plan"
    ),
}
"""Cases that cannot work on a Spider head by its nature, and why."""

register("spider", SpiderLayout, deselect=NOT_ON_SPIDER)
