"""Liveness and readiness probes, and the Prometheus page."""

from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST

from videobatch.errors import ServiceUnavailable
from videobatch.extensions import get_config, get_db, get_redis
from videobatch.metrics import render_metrics
from videobatch.services.readiness import check_dependencies

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict:
    """The process is alive (no dependency is consulted)."""
    return {"ok": True}


@bp.get("/readyz")
def readyz() -> dict:
    """PostgreSQL and Redis answer within READINESS_TIMEOUT_S; else 503 naming which did not."""
    checks = check_dependencies(get_db(), get_redis(), timeout_s=get_config().readiness_timeout_s)
    failed = [name for name, result in checks.items() if not result["ok"]]
    if failed:
        raise ServiceUnavailable(
            f"Not ready: {', '.join(failed)} did not answer",
            headers={"Retry-After": "5"},
            failed=failed,
            checks=checks,
        )
    return {"ok": True, "checks": checks}


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format: request, create, credit and queue metrics."""
    config = get_config()
    return Response(
        render_metrics(get_db(), config.prometheus_multiproc_dir), content_type=CONTENT_TYPE_LATEST
    )
