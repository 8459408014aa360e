"""Drives `sandbay serve`'s MCP endpoint (streamable HTTP) with the official
Python MCP client: two users with two keys, each sees only their own files.

Usage: http_client_test.py SANDBAY_BINARY

Starts the server on a free loopback port over a temporary data directory,
makes a key for each user with `sandbay keys add`, and checks through
`tools/call` that a file one user writes is invisible to the other, on the
session endpoint and on `/v1/mcp?session=...`; that a wrong key gets 401 and
that another user's session endpoint is a 404; and that the server's
OpenAPI document (`/v1/openapi.json`) validates with openapi-spec-validator.
The last line printed is
`mcp-http: N passed, N failed`; the exit code is non-zero when anything failed.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import traceback
import urllib.error
import urllib.request

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, label, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {label}: {detail}", flush=True)


def text_of(result):
    return "".join(getattr(block, "text", "") for block in result.content)


async def with_session(url, key, body):
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    async with client:
        async with streamable_http_client(url, http_client=client) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await body(session)


def status_of(url, key, method="POST", data=b"{}"):
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    request.add_header("Accept", "application/json, text/event-stream")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as e:
        return e.code


async def run(binary, checks):
    with tempfile.TemporaryDirectory(prefix="sandbay-mcp-http-") as data:
        keys = {}
        for user in ["alice", "bob"]:
            out = subprocess.run(
                [binary, "keys", "add", user, "--data", data],
                check=True, capture_output=True, text=True,
            )
            keys[user] = out.stdout.strip().splitlines()[-1]
        server = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--data", data],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            first = server.stdout.readline()
            base = next(w for w in first.split() if w.startswith("http://"))
            for user in ["alice", "bob"]:
                put = urllib.request.Request(f"{base}/v1/sessions/work", method="PUT")
                put.add_header("Authorization", f"Bearer {keys[user]}")
                urllib.request.urlopen(put, timeout=30).close()

            async def write_own(user):
                async def body(session):
                    tools = [t.name for t in (await session.list_tools()).tools]
                    checks.check(f"{user}: tools listed", "read_file" in tools, tools)
                    out = await session.call_tool(
                        "write_file", {"file_path": "/mine.txt", "content": f"{user}'s secret\n"}
                    )
                    checks.check(f"{user}: write", not out.is_error, text_of(out))
                return await with_session(f"{base}/v1/sessions/work/mcp", keys[user], body)

            await write_own("alice")
            await write_own("bob")

            async def read_own(user):
                async def body(session):
                    out = await session.call_tool("read_file", {"file_path": "/mine.txt"})
                    text = text_of(out)
                    other = "bob" if user == "alice" else "alice"
                    checks.check(f"{user}: reads own file", f"{user}'s secret" in text, text)
                    checks.check(f"{user}: never the other's", other not in text, text)
                    out = await session.call_tool("grep", {"pattern": "secret", "output_mode": "content"})
                    text = text_of(out)
                    checks.check(f"{user}: grep sees one file", text.count("secret") == 1, text)
                return await with_session(f"{base}/v1/sessions/work/mcp", keys[user], body)

            await read_own("alice")
            await read_own("bob")

            # /v1/mcp makes the session on first use; it is the user's own
            async def fresh(session):
                out = await session.call_tool("ls", {"path": "/"})
                checks.check("new session is empty", "mine.txt" not in text_of(out), text_of(out))
            await with_session(f"{base}/v1/mcp?session=scratch", keys["alice"], fresh)

            # the OpenAPI document is valid OpenAPI 3.1
            import json
            from openapi_spec_validator import validate
            with urllib.request.urlopen(f"{base}/v1/openapi.json", timeout=30) as reply:
                doc = json.load(reply)
            try:
                validate(doc)
                checks.check("openapi.json validates", True)
            except Exception as e:  # noqa: BLE001 - any validation error is a failure
                checks.check("openapi.json validates", False, str(e)[:500])
            checks.check("openapi 3.1", str(doc.get("openapi", "")).startswith("3.1"), doc.get("openapi"))

            # a wrong key, and another user's session name that does not exist for bob
            checks.check("wrong key: 401", status_of(f"{base}/v1/sessions/work/mcp", "sbk_wrong") == 401)
            checks.check(
                "another user's session: 404",
                status_of(f"{base}/v1/sessions/scratch/mcp", keys["bob"]) == 404,
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


def main():
    binary = sys.argv[1]
    checks = Checks()
    try:
        asyncio.run(run(binary, checks))
    except Exception:
        traceback.print_exc()
        checks.failed += 1
    print(f"mcp-http: {checks.passed} passed, {checks.failed} failed", flush=True)
    sys.exit(1 if checks.failed else 0)


if __name__ == "__main__":
    main()
