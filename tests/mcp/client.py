"""A real MCP client for tests/mcp.rs: the official Python SDK (`mcp`).

Usage: client.py CADLOOP RUNS_DIR CALLS_JSON

Starts `CADLOOP mcp --runs RUNS_DIR` over stdio, lists the tools, makes each
call of CALLS_JSON (a list of [tool, arguments]) in order and prints one
JSON object: the tools' names and schemas, and for each call its time from
request to answer, its structured content, whether it is an error, its
texts, and its images (MIME type, and the decoded bytes' first eight as hex)."""

import asyncio
import base64
import json
import sys
import time

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client


async def main(cadloop, runs, calls):
    server = StdioServerParameters(command=cadloop, args=["-q", "mcp", "--runs", runs])
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            out = {
                "server": init.server_info.name,
                "instructions": init.instructions,
                "tools": {t.name: {"description": t.description, "input": t.input_schema} for t in tools.tools},
                "calls": [],
            }
            for name, arguments in calls:
                started = time.perf_counter()
                result = await session.call_tool(name, arguments)
                ms = (time.perf_counter() - started) * 1e3
                texts, images = [], []
                for block in result.content:
                    if block.type == "text":
                        texts.append(block.text)
                    elif block.type == "image":
                        data = base64.b64decode(block.data)
                        images.append({"mime": block.mime_type, "head": data[:8].hex(), "bytes": len(data)})
                out["calls"].append({
                    "tool": name,
                    "ms": ms,
                    "error": bool(result.is_error),
                    "structured": result.structured_content,
                    "texts": texts,
                    "images": images,
                })
            print(json.dumps(out))


asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
