"""`/docs`: the OpenAPI document as one self-contained HTML page (no scripts, no fetches).

Rendered from the same document as `/openapi.json`, so the two cannot disagree:
each operation with its method, path, summary, parameters, request body and
responses, then every schema as a table of its fields.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

_SCHEMA_REF = "#/components/schemas/"
_RESPONSE_REF = "#/components/responses/"
_CODE_SPAN = re.compile(r"`([^`]+)`")

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 0; color: #1d2330; background: #fafbfc; }
main { max-width: 980px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { margin-bottom: 4px; } h2 { margin-top: 40px; border-bottom: 1px solid #dde1e7; }
h3 { margin: 0 0 6px; font-size: 17px; }
section.op, section.schema { background: #fff; border: 1px solid #dde1e7; border-radius: 6px;
  padding: 16px 20px; margin: 16px 0; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; background: #f0f2f5;
  padding: 1px 4px; border-radius: 3px; }
.method { display: inline-block; min-width: 56px; text-align: center; color: #fff;
  border-radius: 4px; padding: 1px 6px; margin-right: 8px;
  font: bold 13px ui-monospace, monospace; }
.get { background: #1f7a4d; } .post { background: #1f5fbf; } .put { background: #8a5a00; }
.patch { background: #6b4bbf; } .delete { background: #b42318; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; font-size: 14px; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px;
  border-bottom: 1px solid #eceff3; }
th { color: #5b6472; font-weight: 600; }
.muted { color: #5b6472; } .req { color: #b42318; font-size: 12px; }
nav ul { columns: 2; padding-left: 18px; }
"""


def _text(value: object) -> str:
    """Escape `value` and render `code` spans."""
    return _CODE_SPAN.sub(r"<code>\1</code>", html.escape(str(value)))


def _anchor(name: str) -> str:
    return "schema-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)


def type_label(schema: dict[str, Any]) -> str:
    """A short HTML label for a JSON Schema: `string`, `array of Customer`, `integer | null`."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_SCHEMA_REF):
        name = ref.removeprefix(_SCHEMA_REF)
        return f'<a href="#{_anchor(name)}">{html.escape(name)}</a>'
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            joiner = " &amp; " if combinator == "allOf" else " | "
            return joiner.join(type_label(part) for part in schema[combinator])
    if "const" in schema:
        return f"<code>{html.escape(repr(schema['const']))}</code>"
    kind = schema.get("type")
    if kind == "array":
        return "array of " + type_label(schema.get("items", {}))
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return "map of " + type_label(schema["additionalProperties"])
    if isinstance(kind, list):
        return " | ".join(html.escape(str(k)) for k in kind)
    label = html.escape(str(kind)) if kind else "any"
    if "format" in schema:
        label += f" ({html.escape(str(schema['format']))})"
    return label


def constraints(schema: dict[str, Any]) -> list[str]:
    """The validation keywords of `schema` in words (descends into `anyOf` alternatives)."""
    found: list[str] = []
    words = {
        "minLength": "min length",
        "maxLength": "max length",
        "minimum": "≥",
        "maximum": "≤",
        "exclusiveMinimum": ">",
        "exclusiveMaximum": "<",
        "minItems": "min items",
        "maxItems": "max items",
        "maxProperties": "max entries",
    }
    for keyword, word in words.items():
        if keyword in schema:
            found.append(f"{word} {schema[keyword]}")
    if "pattern" in schema:
        found.append(f"pattern `{schema['pattern']}`")
    if "enum" in schema:
        found.append("one of " + ", ".join(f"`{value}`" for value in schema["enum"]))
    if schema.get("default") is not None:
        found.append(f"default `{json.dumps(schema['default'])}`")
    for part in schema.get("anyOf", []):
        found.extend(constraints(part))
    return found


def _fields_table(schema: dict[str, Any]) -> str:
    properties: dict[str, Any] = schema.get("properties", {})
    if not properties:
        return f'<p class="muted">{type_label(schema)}</p>'
    required = set(schema.get("required", []))
    rows = []
    for name, prop in properties.items():
        notes = [_text(prop["description"])] if "description" in prop else []
        notes += [_text(item) for item in constraints(prop)]
        flag = ' <span class="req">required</span>' if name in required else ""
        rows.append(
            f"<tr><td><code>{html.escape(name)}</code>{flag}</td>"
            f"<td>{type_label(prop)}</td><td>{'<br>'.join(notes)}</td></tr>"
        )
    extra = ""
    if schema.get("additionalProperties") is False:
        extra = '<p class="muted">Other fields are rejected.</p>'
    return (
        "<table><tr><th>Field</th><th>Type</th><th>Notes</th></tr>"
        + "".join(rows)
        + "</table>"
        + extra
    )


def _parameters(parameters: list[dict[str, Any]]) -> str:
    rows = []
    for parameter in parameters:
        schema = parameter.get("schema", {})
        notes = [_text(parameter["description"])] if "description" in parameter else []
        notes += [_text(item) for item in constraints(schema)]
        flag = ' <span class="req">required</span>' if parameter.get("required") else ""
        rows.append(
            f"<tr><td><code>{html.escape(parameter['name'])}</code>{flag}</td>"
            f"<td>{html.escape(parameter['in'])}</td><td>{type_label(schema)}</td>"
            f"<td>{'<br>'.join(notes)}</td></tr>"
        )
    return (
        "<h4>Parameters</h4><table><tr><th>Name</th><th>In</th><th>Type</th><th>Notes</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _resolve(document: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    ref = item.get("$ref")
    if isinstance(ref, str) and ref.startswith(_SCHEMA_REF):
        resolved: dict[str, Any] = document["components"]["schemas"][ref.removeprefix(_SCHEMA_REF)]
        return resolved
    if isinstance(ref, str) and ref.startswith(_RESPONSE_REF):
        response: dict[str, Any] = document["components"]["responses"][
            ref.removeprefix(_RESPONSE_REF)
        ]
        return response
    return item


def _object_schemas(document: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The object schemas a body schema is made of: itself, its `oneOf`/`anyOf`
    alternatives, the items of an array (so `X | array of X` shows the fields of X once)."""
    found: list[dict[str, Any]] = []
    todo = [schema]
    while todo:
        item = todo.pop(0)
        alternatives = item.get("oneOf") or item.get("anyOf")
        if alternatives:
            todo.extend(alternatives)
        elif item.get("type") == "array" and isinstance(item.get("items"), dict):
            todo.append(item["items"])
        else:
            resolved = _resolve(document, item)
            if resolved not in found:
                found.append(resolved)
    return found


def _request_body(document: dict[str, Any], content: dict[str, Any]) -> list[str]:
    """A heading per media type of a request body, with the fields of its schema."""
    parts = []
    for media_type, media in content.items():
        if "schema" not in media:
            continue
        schema = media["schema"]
        parts.append(
            f'<h4>Request body <span class="muted">{html.escape(media_type)}: '
            f"{type_label(schema)}</span></h4>"
        )
        parts.extend(_fields_table(found) for found in _object_schemas(document, schema))
    return parts


def _body_schema(content: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    for media_type, media in content.items():
        if "schema" in media:
            return media_type, media["schema"]
    return None


def _operation(document: dict[str, Any], method: str, path: str, op: dict[str, Any]) -> str:
    parts = [
        f'<section class="op" id="{html.escape(op.get("operationId", ""))}">',
        f'<h3><span class="method {method}">{method.upper()}</span>'
        f"<code>{html.escape(path)}</code></h3>",
        f"<p>{_text(op.get('summary', ''))}</p>",
    ]
    if op.get("description"):
        parts.append(f'<p class="muted">{_text(op["description"])}</p>')
    if op.get("parameters"):
        parts.append(_parameters(op["parameters"]))
    body = op.get("requestBody")
    if body:
        parts.extend(_request_body(document, body.get("content", {})))
    rows = []
    success_tables = []
    for status, response in op.get("responses", {}).items():
        resolved = _resolve(document, response)
        found = _body_schema(resolved.get("content", {}))
        label = f"{html.escape(found[0])}: {type_label(found[1])}" if found else ""
        rows.append(
            f"<tr><td><code>{html.escape(status)}</code></td>"
            f"<td>{_text(resolved.get('description', ''))}</td><td>{label}</td></tr>"
        )
        if status.startswith("2") and found is not None:
            success_tables.append(
                f'<h4>Response {html.escape(status)} <span class="muted">'
                f"{type_label(found[1])}</span></h4>" + _fields_table(_resolve(document, found[1]))
            )
    parts.extend(success_tables)
    parts.append(
        "<h4>Responses</h4><table><tr><th>Status</th><th>Meaning</th><th>Body</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    parts.append("</section>")
    return "".join(parts)


def render_docs(document: dict[str, Any]) -> str:
    """The whole page for an OpenAPI 3.1 `document`."""
    info = document.get("info", {})
    title = html.escape(info.get("title", "API"))
    operations: list[tuple[str, str, dict[str, Any]]] = [
        (method, path, op)
        for path, item in document.get("paths", {}).items()
        for method, op in item.items()
    ]
    nav = "".join(
        f'<li><a href="#{html.escape(op.get("operationId", ""))}">'
        f"<code>{method.upper()} {html.escape(path)}</code></a> {_text(op.get('summary', ''))}</li>"
        for method, path, op in operations
    )
    servers = ", ".join(
        f"<code>{html.escape(server.get('url', ''))}</code>"
        for server in document.get("servers", [])
    )
    schemas = document.get("components", {}).get("schemas", {})
    schema_sections = "".join(
        f'<section class="schema" id="{_anchor(name)}"><h3>{html.escape(name)}</h3>'
        + (
            f'<p class="muted">{_text(schema["description"])}</p>'
            if "description" in schema
            else ""
        )
        + _fields_table(schema)
        + "</section>"
        for name, schema in schemas.items()
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head><body><main>"
        f'<h1>{title}</h1><p class="muted">Version {html.escape(str(info.get("version", "")))}'
        f" · OpenAPI {html.escape(str(document.get('openapi', '')))} · "
        f'<a href="/openapi.json">openapi.json</a> · server {servers}</p>'
        f"<p>{_text(info.get('description', ''))}</p>"
        f"<nav><h2>Operations</h2><ul>{nav}</ul></nav>"
        + "".join(_operation(document, method, path, op) for method, path, op in operations)
        + f"<h2>Schemas</h2>{schema_sections}</main></body></html>"
    )
