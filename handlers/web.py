"""The web client (`GET /`, `/web/{file}`) and the API reference in the
browser (`/api/docs`, `/api/docs/static/{file}`): static files with ETags,
each page under a strict Content-Security-Policy, errors in the API's one
JSON shape."""

import base64
import functools
import hashlib
import re
from pathlib import Path

import orjson
from swagger_ui.core import ApplicationDocument
from tornado.web import HTTPError, RequestHandler, StaticFileHandler, stream_request_body

from .errors import status_message
from .openapi import DOCUMENT_PATH

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
DOCS_PREFIX = "/api/docs"
# A plain file name: no folders, nothing hidden, no byte the file system refuses.
_FILE_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
_CONTENT_TYPES = {
    ".html": "text/html; charset=UTF-8",
    ".css": "text/css; charset=UTF-8",
    ".js": "text/javascript; charset=UTF-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# The one inline script of swagger-ui-py's page (its start-up call).
_INLINE_SCRIPT_RE = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _policy(*directives: str) -> str:
    return "; ".join(directives)


_COMMON = (
    "img-src 'self' data:",
    "connect-src 'self'",  # CSP 3: 'self' covers ws:// and wss:// to this host
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "object-src 'none'",
)
# The client's page: scripts and styles from its own files only; no string
# ever becomes HTML (Trusted Types with no policy: innerHTML and the like throw).
CLIENT_CSP = _policy(
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    *_COMMON,
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
)


class WebMixin:
    """Security headers on every answer (errors included), errors as JSON,
    and a request body (which no route here reads) dropped as it streams in,
    never buffered."""

    csp = CLIENT_CSP

    def data_received(self, chunk: bytes) -> None:
        pass

    def set_default_headers(self):
        self.clear_header("Server")
        self.set_header("Content-Security-Policy", self.csp)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")

    def write_error(self, status_code: int, **kwargs) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        if status_code == 405:
            self.set_header("Allow", "GET, HEAD" if isinstance(self, StaticFileHandler) else "GET")
        self.finish(orjson.dumps({"error": status_message(status_code)}))


@stream_request_body
class WebFileHandler(WebMixin, StaticFileHandler):
    """One file of web/ (or of the folder given as `path`): ETag, Last-Modified,
    and revalidated on every use (`no-cache`): the modules import one another
    by plain name, with no version in the URL, so a changed file must show."""

    # Served files, by name; None: any file of the folder.
    served: frozenset[str] | None = None

    async def get(self, path: str, include_body: bool = True) -> None:
        if not _FILE_NAME_RE.fullmatch(path) or (self.served is not None and path not in self.served):
            raise HTTPError(404)
        await super().get(path, include_body)

    def get_content_type(self) -> str:
        return _CONTENT_TYPES.get(Path(self.absolute_path).suffix) or super().get_content_type()

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        try:
            return super().validate_absolute_path(root, absolute_path)
        except HTTPError as exc:
            if exc.status_code == 403:  # a path outside the folder: not ours to admit to
                raise HTTPError(404) from None
            raise

    def get_cache_time(self, path, modified, mime_type) -> int:
        return 0

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")


class PageHandler(WebFileHandler):
    """`GET /`: the client's page, web/index.html."""

    async def get(self, include_body: bool = True) -> None:
        await super().get("index.html", include_body)

    async def head(self) -> None:
        await self.get(include_body=False)


@functools.cache
def api_docs() -> tuple[str, str]:
    """(page, Content-Security-Policy) of the API reference: swagger-ui-py's
    page and assets, reading GET /api/openapi.json; its one inline script
    is allowed by its hash, and no other."""
    doc = ApplicationDocument(None, config_path=str(DOCUMENT_PATH), url_prefix=DOCS_PREFIX, title="Chat API")
    # The document is already served as JSON; swagger-ui-py's own route for it is not used.
    doc.parameters["url"] = '"/api/openapi.json"'
    page = doc.doc_html
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT_RE.findall(page)
    ]
    script_src = " ".join(["script-src 'self'", *hashes])
    # Swagger UI writes a <style> element of its own: inline styles are allowed
    # here (styles cannot run code), inline scripts are not.
    csp = _policy("default-src 'none'", script_src, "style-src 'self' 'unsafe-inline'", *_COMMON)
    return page, csp


def api_docs_folder() -> str:
    """Where swagger-ui-py keeps the Swagger UI files it bundles."""
    return ApplicationDocument(None, config_path=str(DOCUMENT_PATH), url_prefix=DOCS_PREFIX).static_dir


@stream_request_body
class ApiDocsHandler(WebMixin, RequestHandler):
    """`GET /api/docs`: docs/openapi.yaml, rendered by Swagger UI."""

    csp = api_docs()[1]

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.write(api_docs()[0])


class ApiDocsFileHandler(WebFileHandler):
    """`GET /api/docs/static/{file}`: the Swagger UI files its page uses."""

    csp = api_docs()[1]
    served = frozenset(re.findall(rf'{DOCS_PREFIX}/static/([^"]+)"', api_docs()[0]))
