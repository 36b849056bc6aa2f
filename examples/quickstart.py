"""Store a short conversation in a local SQLite file and read it back."""

from __future__ import annotations

import asyncio

from convostore import SQLAlchemySession


async def main() -> None:
    async with SQLAlchemySession.from_url(
        "quickstart", url="sqlite:///convostore-quickstart.db", create_tables=True
    ) as session:
        await session.clear_session()
        await session.add_items([{"role": "user", "content": "What is the capital of France?"}])
        await session.add_items([{"role": "assistant", "content": "Paris."}])
        await session.add_items([{"role": "user", "content": "And its population?"}])
        for item in await session.get_items():
            print(f"{item['role']:>9}: {item['content']}")
        print("latest:", await session.get_items(limit=1))
        print("popped:", await session.pop_item())
        print("items left:", len(await session.get_items()))


if __name__ == "__main__":
    asyncio.run(main())
