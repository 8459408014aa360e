"""Drives the sandbay MCP server with the official Python MCP client.

Usage: client_test.py [--transcript FILE] [--docker] -- SERVER_COMMAND [ARGS...]

The server command is started once per backend with `--backend state`,
`--backend fs=<temporary directory>` and, with --docker, `--backend docker`
appended. Every tool is called
through `tools/call`, including failures and hostile paths, and each
reply is compared byte for byte with the text the tools are pinned to.
The last line printed is `mcp: N passed, N failed`; the exit code is
non-zero when anything failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client

TOOLS = ["ls", "read_file", "write_file", "edit_file", "delete", "glob", "grep"]


class Checks:
    """Counts checks; a failed check is reported and the run goes on."""

    def __init__(self, transcript):
        self.passed = 0
        self.failed = 0
        self.transcript = transcript

    def check(self, label, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {label}: {detail}", flush=True)

    def equal(self, label, got, want):
        self.check(label, got == want, f"\n  got:  {got!r}\n  want: {want!r}")

    def log(self, event):
        if self.transcript is not None:
            self.transcript.write(json.dumps(event) + "\n")


async def call(session, checks, backend, name, args):
    """One tools/call; returns (text, is_error)."""
    result = await session.call_tool(name, args)
    texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
    checks.check(f"{backend} {name}: one text block", len(result.content) == 1 and len(texts) == 1,
                 repr(result.content))
    text = texts[0] if texts else ""
    checks.log({"backend": backend, "call": name, "arguments": args,
                "isError": result.is_error, "text": text})
    return text, result.is_error


async def expect(session, checks, backend, name, args, want, is_error=False):
    text, err = await call(session, checks, backend, name, args)
    checks.equal(f"{backend} {name} {json.dumps(args)[:60]}", text, want)
    checks.check(f"{backend} {name} isError", err == is_error, f"isError={err}, expected {is_error}")
    return text


async def scenario(session, checks, backend, workspace, shell):
    """The same calls and the same expected texts on every backend; `shell`
    says whether the backend is a sandbox that offers execute."""
    init = await session.initialize()
    checks.equal(f"{backend} serverInfo.name", init.server_info.name, "sandbay")
    checks.check(f"{backend} tools capability", init.capabilities.tools is not None)
    checks.log({"backend": backend, "initialize": {"protocolVersion": init.protocol_version,
                                                   "serverInfo": init.server_info.model_dump(),
                                                   "instructions": init.instructions}})

    listed = await session.list_tools()
    names = [t.name for t in listed.tools]
    checks.equal(f"{backend} tools/list names", names, TOOLS + (["execute"] if shell else []))
    checks.log({"backend": backend, "tools/list": [
        {"name": t.name, "description": t.description, "inputSchema": t.input_schema,
         "annotations": t.annotations.model_dump(exclude_none=True) if t.annotations else None}
        for t in listed.tools]})
    by_name = {t.name: t for t in listed.tools}
    if "read_file" in by_name:
        schema = by_name["read_file"].input_schema
        checks.equal(f"{backend} read_file required", schema.get("required"), ["file_path"])
        checks.equal(f"{backend} read_file properties", sorted(schema.get("properties", {})),
                     ["file_path", "limit", "offset"])
        checks.equal(f"{backend} read_file readOnlyHint", by_name["read_file"].annotations.read_only_hint, True)
    if "delete" in by_name:
        checks.equal(f"{backend} delete destructiveHint", by_name["delete"].annotations.destructive_hint, True)
    for t in listed.tools:
        checks.check(f"{backend} {t.name} has a description", bool(t.description) and "/" in t.description)
        checks.equal(f"{backend} {t.name} schema type", t.input_schema.get("type"), "object")

    # write_file
    await expect(session, checks, backend, "write_file",
                 {"file_path": "/src/app.py", "content": "def f():\n    if x:\n        return 1\n    return 2\n"},
                 "Wrote 49 bytes (4 lines) to /src/app.py.")
    await expect(session, checks, backend, "write_file", {"file_path": "notes/todo.md", "content": ""},
                 "Wrote an empty file to /notes/todo.md.")
    await expect(session, checks, backend, "write_file",
                 {"file_path": "/README.md", "content": "# Demo\nCall f() (twice).\n"},
                 "Wrote 25 bytes (2 lines) to /README.md.")

    # ls
    await expect(session, checks, backend, "ls", {"path": "/"},
                 "/README.md (25 bytes)\n/notes/\n/src/")
    await expect(session, checks, backend, "ls", {},
                 "/README.md (25 bytes)\n/notes/\n/src/")
    await expect(session, checks, backend, "ls", {"path": "/README.md"},
                 "Error: /README.md: not a directory\nHint: read a file with read_file.", True)

    # read_file
    await expect(session, checks, backend, "read_file", {"file_path": "/src/app.py"},
                 "     1\tdef f():\n     2\t    if x:\n     3\t        return 1\n     4\t    return 2")
    await expect(session, checks, backend, "read_file", {"file_path": "/src/app.py", "offset": 1, "limit": 2},
                 "     2\t    if x:\n     3\t        return 1\n"
                 "[Showing lines 2-3 of 4. Call read_file with offset=3 to read more.]")
    await expect(session, checks, backend, "read_file", {"file_path": "/notes/todo.md"},
                 "The file /notes/todo.md exists but is empty.")
    await expect(session, checks, backend, "read_file", {"file_path": "/src/app.py", "offset": 9},
                 "Error: invalid argument: offset 9 is past the end of /src/app.py, which has 4 lines; "
                 "use an offset below 4", True)
    await expect(session, checks, backend, "read_file", {"path": "/src/app.py"},
                 "Error: invalid argument: read_file: unknown field `path`, expected one of "
                 "`file_path`, `offset`, `limit`", True)
    await expect(session, checks, backend, "read_file", {"file_path": "/src/app.py", "offset": "two"},
                 "Error: invalid argument: read_file: field `offset`: invalid type: string \"two\", "
                 "expected a non-negative integer", True)

    # edit_file
    await expect(session, checks, backend, "edit_file",
                 {"file_path": "/src/app.py", "old_string": "return 1", "new_string": "return 10"},
                 "Replaced 1 occurrence in /src/app.py.")
    await expect(session, checks, backend, "edit_file",
                 {"file_path": "/src/app.py", "old_string": "\tif x:\n\t\treturn 10", "new_string": "if y:"},
                 "Error: /src/app.py: the text to replace was not found\n"
                 "Hint: a passage that differs only in whitespace (indentation, tabs, spaces) is at lines 2-3:\n"
                 "     2\t    if x:\n     3\t        return 10\n"
                 "Copy old_string exactly from there, without the line numbers.", True)
    await expect(session, checks, backend, "edit_file",
                 {"file_path": "/src/app.py", "old_string": "return", "new_string": "yield"},
                 "Error: /src/app.py: the text to replace occurs 2 times; add surrounding context to make it "
                 "unique, or set replace_all\nHint: the occurrences are on lines 3, 4.", True)
    await expect(session, checks, backend, "edit_file",
                 {"file_path": "/src/app.py", "old_string": "return", "new_string": "yield", "replace_all": True},
                 "Replaced 2 occurrences in /src/app.py.")

    # glob
    await expect(session, checks, backend, "glob", {"pattern": "*.py"}, "/src/app.py")
    await expect(session, checks, backend, "glob", {"pattern": "**/*.{md,py}"},
                 "/README.md\n/notes/todo.md\n/src/app.py")
    await expect(session, checks, backend, "glob", {"pattern": "*.rs", "path": "/src"},
                 "No files match \"*.rs\" under /src.")

    # grep
    await expect(session, checks, backend, "grep", {"pattern": "yield"}, "/src/app.py")
    await expect(session, checks, backend, "grep", {"pattern": "yield", "output_mode": "content", "before_context": 1},
                 "/src/app.py\n2-    if x:\n3:        yield 10\n4:    yield 2")
    await expect(session, checks, backend, "grep", {"pattern": "f() (", "literal": True, "output_mode": "count"},
                 "/README.md:1")
    await expect(session, checks, backend, "grep", {"pattern": "f() ("},
                 "Error: invalid argument: invalid regular expression: error: unclosed group; "
                 "set literal to search for the text as is", True)
    await expect(session, checks, backend, "grep", {"pattern": "absent", "glob": "*.md"},
                 "No matches for \"absent\" in files matching \"*.md\" under /.")

    # hostile paths
    await expect(session, checks, backend, "read_file", {"file_path": "../../etc/passwd"},
                 "Error: invalid path \"../../etc/passwd\": `..` climbs above the workspace root", True)
    await expect(session, checks, backend, "write_file", {"file_path": "/src/../../escape.txt", "content": "x"},
                 "Error: invalid path \"/src/../../escape.txt\": `..` climbs above the workspace root", True)
    await expect(session, checks, backend, "read_file", {"file_path": "/etc/passwd"},
                 "Error: /etc/passwd: no such file or directory\nHint: use ls or glob to find the right path.", True)
    await expect(session, checks, backend, "ls", {"path": "C:\\Windows"},
                 "Error: invalid path \"C:\\\\Windows\": the path contains a backslash; use `/` as separator", True)
    if workspace is not None:
        checks.check(f"{backend} nothing escaped", not (workspace.parent / "escape.txt").exists())
        os.symlink("/etc", workspace / "etc-link")
        text, err = await call(session, checks, backend, "read_file", {"file_path": "/etc-link/passwd"})
        checks.check(f"{backend} symlink out is refused", err and text.startswith("Error: /etc-link/passwd: "),
                     text)
        checks.check(f"{backend} no host content", "root:" not in text, text)
        checks.check(f"{backend} no host path", str(workspace) not in text, text)
        os.unlink(workspace / "etc-link")

    if shell:
        # execute sees the files of the other tools, and reports the exit code
        await expect(session, checks, backend, "execute", {"command": "grep -c yield src/app.py"},
                     "2\n[exit code 0]")
        await expect(session, checks, backend, "execute", {"command": "echo out; echo err >&2; exit 3"},
                     "out\n[stderr]\nerr\n[exit code 3]")
        await expect(session, checks, backend, "execute", {"command": "echo made > made.txt"},
                     "[no output]\n[exit code 0]")
        await expect(session, checks, backend, "read_file", {"file_path": "/made.txt"}, "     1\tmade")
        await expect(session, checks, backend, "delete", {"file_path": "/made.txt"}, "Deleted /made.txt.")
        await expect(session, checks, backend, "execute", {"command": "echo a; sleep 20", "timeout": 1},
                     "a\n[timed out after 1s: the command and everything it started were killed; "
                     "output up to then is shown]")
        await expect(session, checks, backend, "execute", {"command": ""},
                     "Error: invalid argument: execute: command is empty", True)
    else:
        # execute: not offered without a sandbox
        await expect(session, checks, backend, "execute", {"command": "cat /etc/passwd"},
                     f"Error: execute is not supported by the {backend.split('=')[0]} backend\n"
                     "Hint: this workspace has no shell; use ls, read_file, write_file, edit_file, delete, glob and grep.",
                     True)

    # unknown tool: a protocol error
    try:
        await session.call_tool("cat", {"file_path": "/README.md"})
        checks.check(f"{backend} unknown tool raises", False, "no error")
    except MCPError as e:
        checks.equal(f"{backend} unknown tool code", e.code, -32602)
        checks.check(f"{backend} unknown tool message", "unknown tool `cat`" in e.message, e.message)
        checks.log({"backend": backend, "call": "cat", "protocolError": {"code": e.code, "message": e.message}})

    # concurrent calls on distinct paths all succeed
    results = await asyncio.gather(*[
        session.call_tool("write_file", {"file_path": f"/many/f{i}.txt", "content": f"line {i}\n"})
        for i in range(20)])
    checks.check(f"{backend} 20 concurrent writes", all(not r.is_error for r in results),
                 [r.content[0].text for r in results if r.is_error])

    # output budget: a big grep is saved into the workspace with a preview
    big = "".join(f"needle {i:04}\n" for i in range(4000))
    await expect(session, checks, backend, "write_file", {"file_path": "/big.txt", "content": big},
                 "Wrote 48000 bytes (4000 lines) to /big.txt.")
    text, err = await call(session, checks, backend, "grep",
                           {"pattern": "needle", "path": "/big.txt", "output_mode": "content",
                            "max_matches": 5000})
    first = text.split("\n")[0]
    checks.check(f"{backend} big grep saved", not err and first.startswith(
        "[This result is 66901 bytes in 4001 lines, over the 32768-byte limit for one reply. "
        "It was saved whole to /.sandbay/results/grep-"), first)
    lines = text.split("\n")
    checks.equal(f"{backend} big grep preview head", lines[1:3], ["/big.txt", "1:needle 0000"])
    checks.equal(f"{backend} big grep preview tail", lines[-1], "4000:needle 3999")
    saved = first.split("saved whole to ")[1].split(":")[0]
    await expect(session, checks, backend, "read_file", {"file_path": saved, "offset": 4000},
                 "  4001\t4000:needle 3999")

    # delete
    await expect(session, checks, backend, "delete", {"file_path": "/many"},
                 "Deleted the directory /many and everything in it.")
    await expect(session, checks, backend, "delete", {"file_path": "/README.md"}, "Deleted /README.md.")
    await expect(session, checks, backend, "delete", {"file_path": "/README.md"},
                 "Error: /README.md: no such file or directory", True)
    await expect(session, checks, backend, "delete", {"file_path": "/"},
                 "Error: /: permission denied: the workspace root itself cannot be changed", True)
    if workspace is not None:
        checks.check(f"{backend} files are on disk", (workspace / "src" / "app.py").read_text().count("yield") == 2)
        checks.check(f"{backend} deleted on disk", not (workspace / "README.md").exists())


async def run_backend(command, checks, backend, workspace, shell):
    # The client passes only a few variables to the server by default;
    # the Docker backend needs SANDBAY_AGENT (and DOCKER_HOST, if set).
    env = {k: v for k, v in os.environ.items() if k.startswith(("SANDBAY_", "DOCKER_", "RUST_"))}
    params = StdioServerParameters(
        command=command[0], args=command[1:] + ["--backend", backend], env=env or None
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await scenario(session, checks, backend, workspace, shell)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--transcript", type=Path)
    parser.add_argument("--docker", action="store_true",
                        help="also run against --backend docker (needs a Docker daemon and the test image)")
    parser.add_argument("server", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = [a for a in args.server if a != "--"] if args.server else []
    if not command:
        parser.error("give the server command after --")
    transcript = open(args.transcript, "w") if args.transcript else None
    checks = Checks(transcript)
    base = Path(tempfile.mkdtemp(prefix="sandbay-mcp-client-"))
    try:
        # state and fs run commands in a local jail (sandbay-exec); docker in a container.
        backends = [("state", None, True), (f"fs={base / 'ws'}", base / "ws", True)]
        if args.docker:
            backends.append(("docker", None, True))
        for backend, workspace, shell in backends:
            try:
                await run_backend(command, checks, backend, workspace, shell)
            except Exception:  # a crash of one backend's session is one failure
                checks.check(f"{backend} session", False, traceback.format_exc())
    finally:
        shutil.rmtree(base, ignore_errors=True)
        if transcript:
            transcript.close()
    print(f"mcp: {checks.passed} passed, {checks.failed} failed", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
