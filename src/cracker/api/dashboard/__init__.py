"""The web dashboard at /dashboard and the API reference at /docs, every asset served from the package.

Server-rendered pages (Jinja2 templates under ``templates/``), one small script and one stylesheet
under ``static/``, Swagger UI's files vendored under ``static/swagger-ui/`` and ReDoc's under
``static/redoc/`` (see their VENDORED.md): nothing is fetched from the internet, so the dashboard,
/docs and /redoc work on a machine without it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from cracker.api.dashboard import session as sessions
from cracker.api.dashboard.routes import router, templates

STATIC_DIR = Path(__file__).parent / "static"
_SWAGGER = "/dashboard/static/swagger-ui"
_REDOC = "/dashboard/static/redoc"


def install_dashboard(app: FastAPI) -> None:
    """Mount the dashboard, its static files and the self-hosted /docs on ``app``."""
    app.include_router(router)
    app.mount("/dashboard/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API reference",
            swagger_js_url=f"{_SWAGGER}/swagger-ui-bundle.js", swagger_css_url=f"{_SWAGGER}/swagger-ui.css",
            swagger_favicon_url=f"{_SWAGGER}/favicon-32x32.png",
        )

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)

    async def redoc() -> HTMLResponse:
        # with_google_fonts=False: FastAPI's page would otherwise load its fonts from Google.
        page = get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API reference",
            redoc_js_url=f"{_REDOC}/redoc.standalone.js", redoc_favicon_url=f"{_SWAGGER}/favicon-32x32.png",
            with_google_fonts=False,
        )
        # ReDoc's sidebar credit loads its logo from cdn.redoc.ly, with no option to turn it off:
        # the browser may load images from here only (the logo then hides itself, on its error).
        page.headers["content-security-policy"] = "img-src 'self' data:"
        return page

    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)

    async def on_signed_out(request: Request, exc: Exception) -> Response:
        response = RedirectResponse("/dashboard/login", 303)
        if request.cookies.get(sessions.SESSION_COOKIE):
            sessions.clear_session_cookie(request, response)  # expired or ended: forget it
        return response

    async def on_csrf(request: Request, exc: Exception) -> Response:
        return _error_page(request, 403, "Request refused",
                           "The form was not sent by this dashboard (its security token is missing or wrong). "
                           "Reload the page and try again.")

    async def on_not_operator(request: Request, exc: Exception) -> Response:
        return _error_page(request, 403, "Operators only", "The operator view needs a session signed in with an "
                           "admin key.")

    app.add_exception_handler(sessions.SignInRequired, on_signed_out)
    app.add_exception_handler(sessions.CsrfRefused, on_csrf)
    app.add_exception_handler(sessions.NotOperator, on_not_operator)


def _error_page(request: Request, status_code: int, title: str, message: str) -> Response:
    if request.url.path.startswith("/dashboard/api/"):
        return JSONResponse({"error": title}, status_code=status_code)
    response = templates.TemplateResponse(
        request, "error.html", {"session": None, "active": "error", "title": title, "message": message},
        status_code=status_code,
    )
    response.headers["cache-control"] = "no-store"
    return response


__all__ = ["install_dashboard"]
