"""/docs (Swagger UI) and /redoc with their scripts and styles served by the app itself.

FastAPI's default pages load them from a CDN, so on a machine without internet access they
stay blank. The files come from the fastapi-offline package (Swagger UI 5, ReDoc 2).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_ROUTE = "/docs-assets"


def add_offline_docs(app: FastAPI, docs: str = "/docs", redoc: str = "/redoc") -> None:
    """Mount the assets and add the two pages; the app must be built with docs_url=None, redoc_url=None."""
    if not (ASSETS / "swagger-ui-bundle.js").is_file():
        raise RuntimeError(f"{ASSETS} has no Swagger UI files: reinstall fastapi-offline")
    app.mount(ASSETS_ROUTE, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get(docs, include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title}: Swagger UI",
                                   swagger_js_url=f"{root}{ASSETS_ROUTE}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{ASSETS_ROUTE}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{ASSETS_ROUTE}/favicon.png")

    @app.get(redoc, include_in_schema=False)
    async def redoc_page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title}: ReDoc",
                              redoc_js_url=f"{root}{ASSETS_ROUTE}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{ASSETS_ROUTE}/favicon.png", with_google_fonts=False)
