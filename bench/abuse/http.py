"""The least HTTP a client can speak, on asyncio streams: every attack and
the victim go through it, so each connection costs one socket and no library
state, and each can come from its own loopback address."""

import asyncio
import base64
import dataclasses
import os

TIMEOUT_SECS = 5.0


@dataclasses.dataclass
class Server:
    host: str
    port: int


@dataclasses.dataclass
class Answer:
    status: int  # 0: no answer (closed, or timed out: see `timed_out`)
    body: bytes = b""
    timed_out: bool = False


async def connect(server: Server, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to the server from the loopback address `source`."""
    return await asyncio.open_connection(server.host, server.port, local_addr=(source, 0), limit=2**24)


def request_bytes(method: str, path: str, *, cookie: str = "", body: bytes = b"", headers: dict | None = None,
                  length: int | None = None) -> bytes:  # fmt: skip
    """One request's bytes; `length` declares a Content-Length other than the body's."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    if body or length is not None:
        lines += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body) if length is None else length}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """The status and body of the next answer on the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return Answer(status, await reader.readexactly(length) if length else b"")


async def exchange(server: Server, source: str, raw: bytes, timeout: float = TIMEOUT_SECS) -> Answer:
    """One request on a connection of its own."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await connect(server, source)
            writer.write(raw)
            return await read_answer(reader)
    except TimeoutError:
        return Answer(0, timed_out=True)
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        return Answer(0)
    finally:
        if writer is not None:
            writer.close()


def upgrade_bytes(cookie: str) -> bytes:
    """A WebSocket upgrade request for /api/ws."""
    key = base64.b64encode(os.urandom(16)).decode()
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
    return request_bytes("GET", "/api/ws", cookie=cookie, headers=headers)
