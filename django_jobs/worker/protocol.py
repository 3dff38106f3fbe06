"""Messages between supervisor, zygote and children: one JSON object per line.

Children talk over stream sockets, so a message can be of any size; the
reader reassembles lines from whatever ``recv`` returns.
"""

from __future__ import annotations

import json
import socket
from typing import Any

Message = dict[str, Any]


def encode(message: Message) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def send(sock: socket.socket, message: Message) -> None:
    sock.sendall(encode(message))


class Reader:
    """Turns the bytes of a stream socket back into messages."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.closed = False

    def read(self) -> list[Message]:
        """The messages available now, without waiting; marks end of stream."""
        chunks = []
        while True:
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                self.closed = True
                break
            chunks.append(data)
        return self._messages(b"".join(chunks))

    def read_blocking(self) -> Message | None:
        """The next message, waiting for it; ``None`` at end of stream."""
        while b"\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                self.closed = True
                return None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def _messages(self, data: bytes) -> list[Message]:
        self.buffer += data
        if b"\n" not in self.buffer:
            return []
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines]
