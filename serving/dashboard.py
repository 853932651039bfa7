"""The operations dashboard: one static page and its assets, served by the ingress.

The page holds no data: its script reads `GET /v1/metrics/process` and
`GET /v1/drift` from the same origin with the caller's `X-API-Key`, so it
shows exactly what the API serves and needs the same scope (`route`). The
chart library is vendored under `serving/static/vendor/` (see the README
there): nothing is fetched from another site, and the Content-Security-Policy
sent with the page forbids it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter
from fastapi.exceptions import HTTPException
from fastapi.responses import HTMLResponse, Response

log = logging.getLogger(__name__)

# Package data next to this module (pyproject's package-data ships it).
STATIC_DIR = Path(__file__).with_name("static")
PAGE = "dashboard.html"
# Asset name in the URL -> (path under static/, media type). A fixed list, so
# no request can name any other file of the package.
ASSETS: dict[str, tuple[str, str]] = {
    "dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "chart.umd.min.js": ("vendor/chart.umd.min.js", "text/javascript; charset=utf-8"),
}
# Same origin only: the page must work offline and leak nothing to third parties.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page is small and changes with the package; revalidate every time.
    "Cache-Control": "no-cache",
}


def dashboard_routes() -> APIRouter:
    """`GET /dashboard` and `GET /dashboard/assets/{name}`.

    Neither needs a key: the page and its scripts are the same for everyone,
    and every number on it comes from API calls that do.
    """
    router = APIRouter(tags=["dashboard"])

    @router.get("/dashboard", response_class=HTMLResponse)
    async def dashboard() -> Response:
        """The operations dashboard (charts over a chosen time range)."""
        return HTMLResponse(read_static(PAGE), headers=_PAGE_HEADERS)

    @router.get("/dashboard/assets/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404, f"no dashboard asset {name!r}")
        path, media_type = ASSETS[name]
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
        return Response(read_static(path), media_type=media_type, headers=headers)

    return router


def read_static(path: str) -> bytes:
    """A file under serving/static/ (a name from this module, never a request's)."""
    return STATIC_DIR.joinpath(*path.split("/")).read_bytes()
