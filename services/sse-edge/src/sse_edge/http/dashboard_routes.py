"""The dashboard: a static page at `/`, its scripts and styles under `/dashboard/`.

No build step: plain ES modules, served as they are. Every URL the page uses is relative, so it
works at the root of `make run` and under any path prefix an Ingress gives it.
"""

from pathlib import Path
from typing import Final

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

STATIC_DIR: Final = Path(__file__).parent.parent / "dashboard" / "static"

router = APIRouter(tags=["dashboard"])


@router.get("/", include_in_schema=False)
async def dashboard() -> FileResponse:
    # Revalidated on every load, so that a new edge version's page is picked up at once.
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def mount_dashboard(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/dashboard", StaticFiles(directory=STATIC_DIR), name="dashboard")
