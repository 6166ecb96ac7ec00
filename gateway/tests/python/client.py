"""The official Python MCP SDK against the gateway (gateway/tests/integration/python_sdk.rs).

For each mode given ("legacy" = 2025-11-25 with initialize, "auto" = what the
SDK negotiates by itself), lists tools, calls hello-rs.sum.v1 and reads
hello://greeting, then closes the client. Prints one JSON line per mode with
what it saw, including every warning the SDK logged; the test asserts on it.
"""

import asyncio
import json
import logging
import sys

from mcp import Client


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(f"{record.name}: {record.getMessage()}")


async def run(url: str, mode: str, warnings: Collect) -> dict:
    warnings.seen.clear()
    async with Client(url, mode=mode) as client:
        protocol = client.protocol_version
        tools = sorted(t.name for t in (await client.list_tools()).tools)
        result = await client.call_tool("hello-rs.sum.v1", {"numbers": [1, 2, 3]})
        greeting = await client.read_resource("hello://greeting")
    # After the client closed: the session's DELETE has been answered.
    return {
        "mode": mode,
        "protocol": protocol,
        "tools": tools,
        "sum_text": [c.text for c in result.content if getattr(c, "type", "") == "text"],
        "sum_error": bool(result.is_error),
        "greeting": [getattr(c, "text", None) for c in greeting.contents],
        "warnings": list(warnings.seen),
    }


async def main() -> None:
    url, modes = sys.argv[1], sys.argv[2:]
    warnings = Collect()
    logging.getLogger().addHandler(warnings)
    for mode in modes:
        print(json.dumps(await run(url, mode, warnings)), flush=True)


asyncio.run(main())
