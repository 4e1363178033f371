"""The API contract, docs/openapi.yaml, as a check on every answer the tests get.

`check_response` finds the documented operation for a method and path, then
requires the status to be documented for it, the Content-Type to be one the
document names, the JSON body to match the schema (validated by jsonschema-rs,
the validator Schemathesis uses) and every required header to be present and
to match its schema. A path or method the document does not have may only
answer 404 or 405 with the one error shape.
"""

import functools
import json
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

import jsonschema_rs
import yaml

SPEC_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"


class ContractViolation(AssertionError):
    """An answer that docs/openapi.yaml does not allow."""


@functools.cache
def load_document() -> dict:
    """docs/openapi.yaml, read once per test run."""
    with SPEC_PATH.open(encoding="utf-8") as source:
        return yaml.safe_load(source)


@functools.cache
def contract() -> "Contract":
    """The check for the document on disk (built once; validators are cached in it)."""
    return Contract(load_document())


def check_response(method: str, url_or_path: str, status: int, headers: Mapping[str, str], body: bytes | str) -> None:
    """Raises ContractViolation unless the answer is one the document allows."""
    contract().check(method, url_or_path, status, headers, body)


class Contract:
    """One OpenAPI document, as a judge of answers."""

    def __init__(self, document: dict):
        self.document = document
        self._components = document.get("components", {})
        self._validators: dict[str, jsonschema_rs.Validator] = {}
        # Literal paths first: one wins over a template that would match it too.
        templates = sorted(document["paths"], key=lambda t: ("{" in t, t))
        self._routes = [(_template_regex(t), t) for t in templates]

    def find(self, method: str, path: str) -> tuple[str, dict] | None:
        """(path template, operation) documented for this method and path, else None."""
        path = urllib.parse.urlsplit(path).path
        if len(path) > 1:
            path = path.rstrip("/") or "/"  # a trailing slash is accepted everywhere
        for regex, template in self._routes:
            if regex.fullmatch(path):
                operation = self.document["paths"][template].get(method.lower())
                return (template, operation) if operation is not None else None
        return None

    def check(self, method: str, path: str, status: int, headers: Mapping[str, str], body: bytes | str) -> None:
        text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
        found = self.find(method, path)
        where = f"{method.upper()} {urllib.parse.urlsplit(path).path} answered {status}"
        if found is None:
            # Unknown routes and methods: the generic JSON error is all there is to check.
            if status not in (404, 405):
                raise ContractViolation(f"{where}, but docs/openapi.yaml has no such operation")
            response = self.resolve({"$ref": "#/components/responses/NotFound"})
        else:
            template, operation = found
            where = f"{method.upper()} {template} answered {status}"
            response = self._response_for(operation, status)
            if response is None:
                raise ContractViolation(f"{where}: status not documented for this operation; body: {text[:300]!r}")
        self._check_headers(where, response.get("headers", {}), headers)
        content = response.get("content")
        if content:
            schema = self._content_schema(where, content, headers.get("Content-Type", ""))
            if schema is not None and method.upper() != "HEAD":  # HEAD answers carry no body
                self._check_body(where, schema, text)

    def _response_for(self, operation: dict, status: int) -> dict | None:
        responses = operation.get("responses", {})
        response = responses.get(str(status)) or responses.get(f"{status // 100}XX") or responses.get("default")
        return None if response is None else self.resolve(response)

    def _content_schema(self, where: str, content: dict, content_type: str) -> dict | None:
        media_type = content_type.split(";")[0].strip().lower()
        if media_type not in content:
            raise ContractViolation(f"{where} with Content-Type {content_type!r}; documented: {sorted(content)}")
        if media_type != "application/json":
            return None
        return content[media_type].get("schema")

    def _check_body(self, where: str, schema: dict, text: str) -> None:
        try:
            body = json.loads(text)
        except ValueError:
            raise ContractViolation(f"{where} with a body that is not JSON: {text[:300]!r}") from None
        errors = list(self._validator(schema).iter_errors(body))
        if errors:
            details = "; ".join(f"at /{'/'.join(map(str, e.instance_path))}: {e.message}" for e in errors[:5])
            raise ContractViolation(
                f"{where} with a body that does not match docs/openapi.yaml: {details}; body: {text[:300]!r}"
            )

    def _check_headers(self, where: str, documented: dict, headers: Mapping[str, str]) -> None:
        for name, header in documented.items():
            header = self.resolve(header)
            value = headers.get(name)
            if value is None:
                if header.get("required"):
                    raise ContractViolation(f"{where} without the documented header {name}")
                continue
            schema = self.resolve(header.get("schema", {}))
            if schema.get("type") == "integer":
                if not re.fullmatch(r"-?[0-9]+", value):
                    raise ContractViolation(f"{where}: header {name}: {value!r} is not an integer")
                value = int(value)
            errors = list(self._validator(schema).iter_errors(value))
            if errors:
                raise ContractViolation(f"{where}: header {name}: {value!r}: {errors[0].message}")

    def _validator(self, schema: dict) -> jsonschema_rs.Validator:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._validators:
            # The document's components ride along, so "#/components/schemas/X" resolves.
            self._validators[key] = jsonschema_rs.Draft202012Validator({**schema, "components": self._components})
        return self._validators[key]

    def resolve(self, node: dict) -> dict:
        """Follows local $refs (#/components/...) until a node that is not one."""
        while isinstance(node, dict) and "$ref" in node and len(node) == 1:
            target = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node


def _template_regex(template: str) -> re.Pattern:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts))
