"""The ceiling for live delivery: a bare Tornado WebSocket broadcaster, served
by one process the same way as the chat server (same HTTPServer, same loop).

Every socket gets `ready`; a `send` frame from any of them goes to all of
them as one message event shaped like the chat server's (encoded once,
written to each), and the sender gets an ack.
"""

import datetime
import json

from tornado.websocket import WebSocketClosedError, WebSocketHandler

from . import bare


def _now_iso() -> str:
    """Now as the chat server writes message times (ISO 8601 UTC, milliseconds)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _encode(event: dict) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


class Room:
    """Every open socket, and the number of the last message."""

    def __init__(self):
        self.sockets: set[WebSocketHandler] = set()
        self.seq = 0

    def message_event(self, chat_id, sender_id: int, content) -> bytes:
        """The next message event, as the chat server would write it."""
        self.seq += 1
        message = {"id": self.seq, "sender_id": sender_id, "time": _now_iso(), "content": content}
        return _encode({"type": "message", "chat_id": chat_id, "seq": self.seq, "message": message})


class BroadcastSocket(WebSocketHandler):
    def initialize(self, room: Room):
        self.room = room

    def open(self):
        self.set_nodelay(True)
        self.user_id = int(self.get_cookie("user_id", "0"))
        self.room.sockets.add(self)
        self.write_message(_encode({"type": "ready", "user_id": self.user_id}))

    def on_close(self):
        self.room.sockets.discard(self)

    def on_message(self, frame):
        request = json.loads(frame)
        event = self.room.message_event(request.get("chat_id"), self.user_id, request.get("content"))
        for socket in list(self.room.sockets):
            try:
                socket.write_message(event)
            except WebSocketClosedError:
                pass
        ack = {"type": "ack", "request_id": request.get("request_id"), "chat_id": request.get("chat_id"),
               "message_id": self.room.seq}  # fmt: skip
        self.write_message(_encode(ack))


if __name__ == "__main__":
    bare.main([(r"/api/ws", BroadcastSocket, {"room": Room()})])
