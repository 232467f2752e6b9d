"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict:
    """The process is alive (no dependency is consulted)."""
    return {"ok": True}
