"""The messages of protocol.py over a stream socket: one per line.

Children talk to the supervisor over stream sockets, so a message can be of
any size; the reader reassembles lines from whatever ``recv`` returns.
"""

from __future__ import annotations

import socket
from collections import deque

from .protocol import Message, decode, encode

#: Most file descriptors one message may carry (a run message's job pipes).
MAX_FDS = 256
_ANCILLARY = socket.CMSG_SPACE(MAX_FDS * 4)


def send(sock: socket.socket, message: Message) -> None:
    sock.sendall(encode(message))


class Reader:
    """Turns the bytes of a stream socket back into messages.

    With ``fds``, it also takes the file descriptors that come with them, in
    the order they arrive (each arrives no later than its message's bytes).
    """

    def __init__(self, sock: socket.socket, sender: str, *, fds: bool = False) -> None:
        self.sock = sock
        #: Who is at the other end ("child", "supervisor"): what it may send.
        self.sender = sender
        self.buffer = b""
        self.closed = False
        self.takes_fds = fds
        self.fds: deque[int] = deque()

    def _recv(self, flags: int = 0) -> bytes:
        if not self.takes_fds:
            return self.sock.recv(65536, flags)
        data, ancillary, _, _ = self.sock.recvmsg(65536, _ANCILLARY, flags)
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                self.fds.extend(
                    int.from_bytes(payload[i : i + 4], "little", signed=True)
                    for i in range(0, usable, 4)
                )
        return data

    def read(self) -> list[Message]:
        """The messages available now, without waiting; marks end of stream."""
        chunks = []
        while True:
            try:
                data = self._recv(socket.MSG_DONTWAIT)
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
            data = self._recv()
            if not data:
                self.closed = True
                return None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return decode(line, self.sender)

    def _messages(self, data: bytes) -> list[Message]:
        self.buffer += data
        if b"\n" not in self.buffer:
            return []
        *lines, self.buffer = self.buffer.split(b"\n")
        return [decode(line, self.sender) for line in lines]
