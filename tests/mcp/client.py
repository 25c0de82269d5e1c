"""A real MCP client for tests/mcp.rs: the official Python SDK (`mcp`).

Usage: client.py CONNECT_JSON STEPS_JSON (either may be @FILE holding it)

CONNECT_JSON: {"command": [PROGRAM, ARG...]} to start a server over stdio,
or {"url": URL, "headers": {...}} for streamable HTTP.

STEPS_JSON: a list, in order, of
  [TOOL, ARGUMENTS]                         a tool call;
  {"tool", "arguments", "cancel_after"}     a call abandoned (and cancelled)
                                            after that many seconds;
  {"resources": true}                       the resources, every page of
                                            them in turn, and the templates;
  {"resources_from": CURSOR}                one page of resources from a
                                            cursor the test makes;
  {"read": URI}                             a resource read;
  {"wait_for": PATH, "contains": TEXT}      waits (up to 60 s) until the
                                            file holds TEXT.

Prints one JSON object: the server's name and instructions, the tools'
descriptions and schemas, and per step what came back: for a call its time,
structured content, whether it is an error, its texts, its images (MIME
type, the decoded bytes' first eight as hex, their count) and the progress
notifications it got; for a read its contents (text, or the blob's size and
first bytes); errors as their message."""

import asyncio
import base64
import contextlib
import json
import sys
import time
from pathlib import Path

from mcp import ClientSession
from mcp.types import PaginatedRequestParams
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


@contextlib.asynccontextmanager
async def connect(how):
    if "command" in how:
        program, *args = how["command"]
        async with stdio_client(StdioServerParameters(command=program, args=args)) as streams:
            yield streams
    else:
        async with create_mcp_http_client(headers=how.get("headers") or {}) as http:
            async with streamable_http_client(how["url"], http_client=http) as streams:
                yield streams


async def call(session, name, arguments, cancel_after=None):
    progress = []

    async def on_progress(value, total, message):
        progress.append({"progress": value, "total": total, "message": message})

    started = time.perf_counter()
    try:
        result = await session.call_tool(
            name, arguments, read_timeout_seconds=cancel_after, progress_callback=on_progress
        )
    except Exception as err:  # a timeout abandons (and cancels) the request
        return {"tool": name, "raised": f"{type(err).__name__}: {err}", "progress": progress,
                "ms": (time.perf_counter() - started) * 1e3}
    ms = (time.perf_counter() - started) * 1e3
    texts, images = [], []
    for block in result.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "image":
            data = base64.b64decode(block.data)
            images.append({"mime": block.mime_type, "head": data[:8].hex(), "bytes": len(data)})
    return {
        "tool": name,
        "ms": ms,
        "error": bool(result.is_error),
        "structured": result.structured_content,
        "texts": texts,
        "images": images,
        "progress": progress,
    }


async def read(session, uri):
    try:
        result = await session.read_resource(uri)
    except Exception as err:
        return {"read": uri, "raised": str(err)}
    out = []
    for item in result.contents:
        entry = {"uri": str(item.uri), "mime": item.mime_type}
        if getattr(item, "text", None) is not None:
            entry["text"] = item.text
        else:
            data = base64.b64decode(item.blob)
            entry["blob_bytes"] = len(data)
            entry["blob_head"] = data[:8].hex()
        out.append(entry)
    return {"read": uri, "contents": out}


async def wait_for(path, text):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if text in Path(path).read_text():
                return {"waited": path, "found": True}
        await asyncio.sleep(0.1)
    return {"waited": path, "found": False}


async def main(how, steps):
    async with connect(how) as (read_stream, write_stream):
        async with ClientSession(read_stream, write_stream) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            out = {
                "server": init.server_info.name,
                "instructions": init.instructions,
                "tools": {t.name: {"description": t.description, "input": t.input_schema} for t in tools.tools},
                "calls": [],
            }
            for step in steps:
                if isinstance(step, list):
                    out["calls"].append(await call(session, step[0], step[1]))
                elif "tool" in step:
                    out["calls"].append(
                        await call(session, step["tool"], step.get("arguments", {}), step.get("cancel_after")))
                elif "resources" in step:
                    pages, cursor = [], None
                    while True:
                        params = PaginatedRequestParams(cursor=cursor) if cursor else None
                        listed = await session.list_resources(params=params)
                        pages.append([
                            {"uri": str(r.uri), "name": r.name, "mime": r.mime_type, "size": r.size}
                            for r in listed.resources
                        ])
                        cursor = listed.next_cursor
                        if not cursor or len(pages) > 1000:
                            break
                    templates = await session.list_resource_templates()
                    out["calls"].append({
                        "resources": [r for page in pages for r in page],
                        "pages": [len(page) for page in pages],
                        "templates": [t.uri_template for t in templates.resource_templates],
                    })
                elif "resources_from" in step:
                    try:
                        params = PaginatedRequestParams(cursor=step["resources_from"])
                        listed = await session.list_resources(params=params)
                        out["calls"].append({
                            "resources": [str(r.uri) for r in listed.resources],
                            "next": listed.next_cursor,
                        })
                    except Exception as err:
                        out["calls"].append({"raised": str(err)})
                elif "read" in step:
                    out["calls"].append(await read(session, step["read"]))
                elif "wait_for" in step:
                    out["calls"].append(await wait_for(step["wait_for"], step["contains"]))
            print(json.dumps(out))


def argument(text):
    """JSON, or @FILE holding it (for steps too long for a command line)."""
    return json.loads(Path(text[1:]).read_text() if text.startswith("@") else text)


asyncio.run(main(argument(sys.argv[1]), argument(sys.argv[2])))
