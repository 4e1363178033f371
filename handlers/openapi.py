"""GET /api/openapi.json: the API contract, docs/openapi.yaml, as JSON."""

import functools
from pathlib import Path

import orjson
import yaml

from .base import BaseHandler

DOCUMENT_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"


@functools.cache
def document_json() -> bytes:
    """The OpenAPI document as JSON bytes, read and converted once per process."""
    with DOCUMENT_PATH.open(encoding="utf-8") as source:
        return orjson.dumps(yaml.safe_load(source))


class OpenApiHandler(BaseHandler):
    public_methods = ("GET",)

    async def get(self):
        self.write(document_json())
