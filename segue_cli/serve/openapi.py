"""What ``/openapi.json`` says of ``POST /v1/protect`` (its fields, limits and errors; the
route reads its body itself, so FastAPI cannot infer them), and ``/docs``: a page made
from that schema, self-contained (no script, no CDN, no font service), so it works offline
and under the server's Content-Security-Policy."""

from __future__ import annotations

import html
from typing import Any

from ..choices import FACE_MODES, OUTPUT_FORMATS, STRENGTHS
from .config import ServeConfig

ERROR_SCHEMA = {"type": "object", "required": ["error", "hint", "status"], "properties": {
    "error": {"type": "string", "description": "what is wrong, in the CLI's words"},
    "hint": {"type": ["string", "null"], "description": "what to do about it"},
    "status": {"type": "integer", "description": "the HTTP status, repeated"}}}

ERRORS = {
    400: "bad options (unknown, out of range, not UTF-8, not exactly one of identity/label/code), a malformed "
         "multipart body, no photo, or Content-Length with Transfer-Encoding",
    401: "no token or the wrong one (servers started with --token)",
    403: "a request from another web site (a foreign Origin or Sec-Fetch-Site: cross-site) while CORS is off",
    408: "the request's head or body did not arrive in time",
    413: "over the upload limit, more files than --max-files, or more work than the time budget",
    415: "neither multipart/form-data nor an image as the body",
    421: "a Host header that is not this server's (DNS rebinding)",
    422: "not a readable image, too small, or more pixels than --max-pixels (read from the header)",
    503: "busy: every protection slot and waiting place is taken (Retry-After says when to retry)",
}


def fields(config: ServeConfig) -> dict[str, dict[str, Any]]:
    """The fields of a request, as JSON Schema: form fields in a multipart body, or query parameters."""
    return {
        "identity": {"type": "string", "description": "who is in the photos: a name (UTF-8); decides the "
                     "perturbation. Give exactly one of identity, label and code."},
        "label": {"type": "integer", "minimum": 0, "maximum": 65535, "description": "an integer label instead of a name"},
        "code": {"type": "integer", "minimum": 0, "maximum": 65535, "description": "a raw side-information code"},
        "faces": {"type": "string", "enum": list(FACE_MODES), "default": "auto",
                  "description": "auto: face by face on large photos; on: each face; off: the whole photo"},
        "cloak": {"type": "boolean", "default": False, "description": "also cloak against three face networks (dlib's and two MobileFaceNets) "
                  "(only where GET /v1/info says cloak: true)"},
        "format": {"type": "string", "enum": list(OUTPUT_FORMATS), "default": "png", "description": "what comes back"},
        "strength": {"type": "string", "enum": list(STRENGTHS), "default": "high"},
        "quality": {"type": "integer", "minimum": 1, "maximum": 100, "description": "jpeg and webp only"},
    }


def protect_openapi(config: ServeConfig) -> dict[str, Any]:
    """The ``openapi_extra`` of ``POST /v1/protect``."""
    props = fields(config)
    file_part = {"type": "string", "format": "binary", "description": "one photo (JPEG, PNG, WebP, HEIC, AVIF, ...)"}
    multipart = {"type": "object", "properties": {
        "file": file_part,
        "files": {"type": "array", "items": file_part, "maxItems": config.max_files,
                  "description": f"several photos (at most {config.max_files}); a zip comes back"},
        **props}}
    limits = (f"Limits: {config.max_upload_mb:g} MB a request, {config.max_files} files, {config.max_pixels:,} "
              f"pixels a photo, {config.time_budget_s:g} s of protection a request.")
    return {
        "description": "Protect one or more photos. Send multipart/form-data with `file` (or `files`) parts "
                       "and the fields below, or one photo as the body (Content-Type image/*) with the fields "
                       "as query parameters. " + limits,
        "parameters": [{"name": name, "in": "query", "required": False, "schema": schema}
                       for name, schema in props.items()],
        "requestBody": {"required": True, "content": {
            "multipart/form-data": {"schema": multipart},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": {
            "200": {"description": "the protected photo (one file) or a zip of them (several); header "
                                   "X-Segue-Warning for lossy formats",
                    "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}, "application/zip": {}}},
            **{str(status): {"description": words, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
               for status, words in ERRORS.items()}},
    }


def docs_page(schema: dict[str, Any]) -> str:
    """/docs: the schema's paths, fields and errors as plain HTML (no script, nothing fetched)."""
    out = ["<!doctype html><html lang=en><head><meta charset=utf-8><title>segue serve: API</title>",
           "<style>body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
           "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}"
           "code{background:#f3f3f3}</style></head><body>",
           f"<h1>{html.escape(schema['info']['title'])} {html.escape(schema['info']['version'])}: API</h1>",
           "<p>The machine-readable schema: <a href=/openapi.json>/openapi.json</a>. Errors are JSON "
           "<code>{\"error\", \"hint\", \"status\"}</code>.</p>"]
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            out.append(f"<h2><code>{method.upper()} {html.escape(path)}</code></h2>")
            if operation.get("description"):
                out.append(f"<p>{html.escape(operation['description'])}</p>")
            params = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data", {})
            props = params.get("schema", {}).get("properties", {})
            if props:
                out.append("<table><tr><th>field</th><th>type</th><th>what</th></tr>")
                for name, spec in props.items():
                    kind = spec.get("enum") or spec.get("type")
                    out.append(f"<tr><td><code>{html.escape(name)}</code></td><td>{html.escape(str(kind))}</td>"
                               f"<td>{html.escape(spec.get('description', ''))}</td></tr>")
                out.append("</table>")
            out.append("<ul>")
            for status, response in operation.get("responses", {}).items():
                out.append(f"<li><b>{html.escape(status)}</b>: {html.escape(response.get('description', ''))}</li>")
            out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out)
