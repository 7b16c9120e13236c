"""jsbox's MCP server at /mcp, driven by the official Python SDK (`mcp` on PyPI).

Run by tests/tests/mcp_python.rs against the real ingress and sandbox:

    python3 python_client.py URL KEY TIGHT_KEY

KEY is a tenant without a rate limit, TIGHT_KEY one with a burst of a few requests; the
anonymous tier is off. Exits non-zero, saying which check failed, at the first one that does.
"""

import asyncio
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def client(url, key, mode):
    headers = {"Authorization": f"Bearer {key}"} if key else None
    transport = streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))
    return Client(transport, mode=mode)


def check(condition, what):
    if not condition:
        raise AssertionError(what)


async def post_call(url, headers):
    """One JSON-RPC tools/call as plain HTTP, for the status of an answer the client hides."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "run_javascript", "arguments": {"code": "1"}},
    }
    headers = {"Accept": "application/json, text/event-stream", **headers}
    async with httpx2.AsyncClient() as http:
        return await http.post(url, json=body, headers=headers)


async def tools_work(url, key, mode, version):
    async with client(url, key, mode) as mcp:
        check(mcp.protocol_version == version, f"{mode}: protocol {mcp.protocol_version}")
        check(mcp.server_info.name == "jsbox", f"{mode}: server {mcp.server_info}")

        tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
        check(
            sorted(tools) == ["create_session", "end_session", "list_examples", "run_javascript"],
            f"{mode}: tools {sorted(tools)}",
        )
        run = tools["run_javascript"]
        check(run.input_schema["required"] == ["code"], f"{mode}: input schema {run.input_schema}")
        check(run.output_schema["type"] == "object", f"{mode}: output schema {run.output_schema}")

        done = await mcp.call_tool("run_javascript", {"code": "console.log('hi', input); 6 * 7", "input": 5})
        check(not done.is_error, f"{mode}: success is an error: {done}")
        check(done.structured_content["result"] == 42, f"{mode}: result {done.structured_content}")
        check(done.structured_content["log"][0]["data"] == ["hi", 5], f"{mode}: log {done.structured_content}")
        text = done.content[0].text
        check("result: 42" in text and "[log] hi 5" in text, f"{mode}: text {text!r}")

        thrown = await mcp.call_tool("run_javascript", {"code": "throw new RangeError('out of range')"})
        check(thrown.is_error, f"{mode}: a throw is not an error: {thrown}")
        check(thrown.structured_content["error"]["name"] == "RangeError", f"{mode}: {thrown.structured_content}")
        check("RangeError: out of range" in thrown.content[0].text, f"{mode}: {thrown.content}")

        slow = await mcp.call_tool("run_javascript", {"code": "while (true) {}", "timeoutMs": 200})
        check(slow.is_error, f"{mode}: an endless loop is not an error: {slow}")
        check(slow.structured_content["error"]["kind"] == "timeout", f"{mode}: {slow.structured_content}")

        batch = await asyncio.gather(
            *(mcp.call_tool("run_javascript", {"code": "input * input", "input": n}) for n in range(8))
        )
        squares = [result.structured_content["result"] for result in batch]
        check(squares == [n * n for n in range(8)], f"{mode}: concurrent results {squares}")

        examples = await mcp.call_tool("list_examples", {})
        names = [example["name"] for example in examples.structured_content["examples"]]
        check(not examples.is_error and names, f"{mode}: examples {examples}")

        created = await mcp.call_tool("create_session", {"ttlSeconds": 60})
        check(not created.is_error, f"{mode}: create_session {created}")
        session = created.structured_content["id"]
        check(created.structured_content["expiresAt"], f"{mode}: no expiry in {created.structured_content}")
        await mcp.call_tool("run_javascript", {"code": "x = 1", "session": session})
        kept = await mcp.call_tool("run_javascript", {"code": "x + 1", "session": session})
        check(kept.structured_content["result"] == 2, f"{mode}: state not kept: {kept.structured_content}")
        ended = await mcp.call_tool("end_session", {"id": session})
        check(not ended.is_error, f"{mode}: end_session {ended}")
        gone = await mcp.call_tool("run_javascript", {"code": "x", "session": session})
        check(gone.is_error and "session_not_found" in gone.content[0].text, f"{mode}: ended session ran: {gone}")


async def refused_without_a_key(url):
    try:
        async with client(url, None, "legacy") as mcp:
            await mcp.list_tools()
    except Exception:  # the SDK's error for a 401 varies by version; the status is checked below
        pass
    else:
        raise AssertionError("connected without a key")
    answer = await post_call(url, {})
    check(answer.status_code == 401, f"no key: HTTP {answer.status_code}")
    check(answer.json()["error"]["kind"] == "unauthorized", f"no key: {answer.text}")


async def limited(url, tight_key):
    calls = 0
    try:
        async with client(url, tight_key, "legacy") as mcp:
            for _ in range(10):
                await mcp.call_tool("run_javascript", {"code": "1"})
                calls += 1
    except Exception:  # the SDK reports the 429 as an error of the call
        pass
    check(1 <= calls < 4, f"{calls} calls within a burst of 4 requests")
    answer = await post_call(url, {"Authorization": f"Bearer {tight_key}"})
    check(answer.status_code == 429, f"over the limit: HTTP {answer.status_code}")
    check(answer.json()["error"]["kind"] == "rate_limited", f"over the limit: {answer.text}")
    check("retry-after" in answer.headers, f"over the limit: {answer.headers}")


async def main(url, key, tight_key):
    await tools_work(url, key, "legacy", "2025-11-25")
    await tools_work(url, key, "auto", "2026-07-28")  # discovers the server, no handshake
    await refused_without_a_key(url)
    await limited(url, tight_key)
    print("every check passed")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
