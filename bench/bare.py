"""The ceiling: a bare Tornado handler answering {"status": "ok"}, served by
one process the same way as the chat server (same HTTPServer, same loop)."""

import argparse
import asyncio

from tornado.httpserver import HTTPServer
from tornado.web import Application, RequestHandler

from server import loop


class OkHandler(RequestHandler):
    def get(self):
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.write(b'{"status":"ok"}')


async def serve(routes: list, port: int) -> None:
    server = HTTPServer(Application(routes))
    server.listen(port, "127.0.0.1")
    await asyncio.Event().wait()


def main(routes: list) -> None:
    """Serves the routes on --port of loopback, on the chat server's event loop, until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    loop.run(serve(routes, parser.parse_args().port))


if __name__ == "__main__":
    main([(r"/", OkHandler)])
