"""How the web client and the API reference are served: the page and its
files with ETags and a strict Content-Security-Policy, errors as the API's
JSON, nothing outside the folders. (What the page does: test_web_client.py.)"""

import pytest

from .api_helpers import assert_error

CLIENT_FILES = ["app.js", "api.js", "socket.js", "store.js", "app.css", "favicon.svg"]


def _directives(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


@pytest.mark.gen_test
async def test_the_page_is_served_at_the_root_under_a_strict_policy(new_client):
    response = await new_client().get("/")
    assert response.code == 200, response
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert '<script type="module" src="/web/app.js">' in response.text
    assert "Server" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    policy = _directives(response)
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == policy["style-src"] == policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == policy["object-src"] == policy["base-uri"] == "'none'"
    assert policy["require-trusted-types-for"] == "'script'"


@pytest.mark.gen_test
@pytest.mark.parametrize("name", CLIENT_FILES)
async def test_each_file_has_an_etag_and_is_revalidated(new_client, name):
    client = new_client()
    response = await client.get(f"/web/{name}")
    assert response.code == 200, response
    assert response.headers["Cache-Control"] == "no-cache"
    assert "Content-Security-Policy" in response.headers
    again = await client.get(f"/web/{name}", headers={"If-None-Match": response.headers["ETag"]})
    assert again.code == 304 and again.text == ""


@pytest.mark.gen_test
async def test_modules_are_javascript_for_the_browser(new_client):
    response = await new_client().get("/web/app.js")
    assert response.headers["Content-Type"] == "text/javascript; charset=UTF-8"


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "path",
    ["/web/nothing.js", "/web/..%2fREADME.md", "/web/%2e%2e", "/web/.hidden", "/web/a%00b", "/api/docs/static/nope.js",
     "/api/docs/static/swagger-editor.js", "/index.html", "/web"],
)  # fmt: skip
async def test_what_is_not_a_served_file_is_the_json_404(new_client, path):
    response = await new_client().get(path)
    assert assert_error(response, 404) == "no such endpoint"


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/", "/web/app.js", "/api/docs"])
async def test_writes_are_405_with_allow(new_client, path):
    response = await new_client().post(path, {"x": "1"})
    assert_error(response, 405)
    assert "GET" in response.headers["Allow"]


@pytest.mark.gen_test
async def test_the_api_reference_is_swagger_ui_on_the_document(new_client):
    client = new_client()
    page = await client.get("/api/docs")
    assert page.code == 200, page
    assert 'url: "/api/openapi.json"' in page.text
    policy = _directives(page)
    # Its one inline script, by hash; no other inline script may run.
    assert policy["script-src"].startswith("'self' 'sha256-") and "unsafe" not in policy["script-src"]
    assert policy["frame-ancestors"] == "'none'"
    for name in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"):
        assert f"/api/docs/static/{name}" in page.text
        asset = await client.get(f"/api/docs/static/{name}")
        assert asset.code == 200 and "ETag" in asset.headers, asset
