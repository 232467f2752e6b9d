"""The API contract: ``/openapi.json`` and a human-readable page at ``/docs``.

The page's assets come from the swagger-ui-py package and this package's ``static/``, served by
the app itself, so the docs work without reaching any other host.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from flask import Blueprint, Response, current_app, send_from_directory

from videobatch.errors import NotFound
from videobatch.openapi import build_openapi

bp = Blueprint("docs", __name__)

SWAGGER_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>videobatch API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" href="/docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/static/docs.js"></script>
</body>
</html>
"""


def _swagger_ui_dir() -> Path:
    # Located without importing swagger_ui: its package imports web-framework adapters we
    # do not use.
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@bp.get("/openapi.json")
def openapi_document() -> dict:
    """The OpenAPI 3.1 document of this service."""
    document = current_app.extensions.get("videobatch.openapi")
    if document is None:
        document = build_openapi(current_app)
        current_app.extensions["videobatch.openapi"] = document
    return document


@bp.get("/docs")
def docs_page() -> Response:
    """The API reference, rendered from /openapi.json."""
    return Response(DOCS_PAGE, mimetype="text/html")


@bp.get("/docs/assets/<name>")
def docs_asset(name: str) -> Response:
    """A Swagger UI asset."""
    if name not in SWAGGER_ASSETS:
        raise NotFound(f"No asset {name}")
    return send_from_directory(_swagger_ui_dir(), name, max_age=86_400)
