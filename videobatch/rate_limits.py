"""Rate limits: per API key on the public API, per worker host on the internal API.

Flask-Limiter checks the limits in an app-level ``before_request`` hook, which runs before
authentication and before any view, so a limited request never touches the database and never
claims its request id: the client retries the same request after ``Retry-After``.

The counters live in Redis (shared by every process and replica). When Redis fails, limits
fall back to per-process memory counters with the same limits (``in_memory_fallback_enabled``)
and errors are logged, not raised (``swallow_errors``): an outage of the limiter's store must
not turn every request into a 5xx, and creates and replays must keep working without Redis.
"""

from __future__ import annotations

import hashlib
import math
import time

from flask import Flask, Response, request
from flask_limiter import Limiter, RateLimitExceeded

from videobatch.auth import bearer_or_header
from videobatch.config import Config
from videobatch.errors import problem

LIMITED_BLUEPRINTS = {"enterprise": "rate_limit_default", "internal": "rate_limit_internal"}


def api_key_identity() -> str:
    """Whom a public request counts against: its API key (hashed, never stored), else its address.

    Unknown keys count too, which also slows down anyone guessing keys.
    """
    key = bearer_or_header(request, "x-api-key")
    if key:
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:32]
    return "addr:" + (request.remote_addr or "unknown")


def worker_host_identity() -> str:
    """Whom an internal request counts against: the worker's address (they share one secret)."""
    return "worker:" + (request.remote_addr or "unknown")


IDENTITIES = {"enterprise": api_key_identity, "internal": worker_host_identity}


def register_rate_limits(app: Flask, config: Config) -> Limiter:
    """Attach the limiter to ``app`` and put each limited blueprint under its shared limit."""
    storage_options = (
        {
            "socket_timeout": config.redis_socket_timeout_s,
            "socket_connect_timeout": config.redis_socket_timeout_s,
        }
        if config.redis_url
        else {}
    )
    limiter = Limiter(
        key_func=api_key_identity,
        app=app,
        storage_uri=config.redis_url or "memory://",
        storage_options=storage_options,
        # Sliding-window counter: no burst of twice the limit at a window edge, two keys a check.
        strategy="sliding-window-counter",
        key_prefix="vb-ratelimit",
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        headers_enabled=False,  # we write Retry-After on the 429 only, see rate_limited
        enabled=config.rate_limit_enabled,
    )
    for name, setting in LIMITED_BLUEPRINTS.items():
        blueprint = app.blueprints.get(name)
        if blueprint is not None:
            limiter.shared_limit(getattr(config, setting), scope=name, key_func=IDENTITIES[name])(
                blueprint
            )

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(error: RateLimitExceeded) -> Response:
        retry_after = _seconds_until_reset(limiter)
        response = problem(
            429,
            "rate_limited",
            "Too many requests",
            f"Rate limit of {error.description} exceeded; retry in {retry_after} s",
            retry_after=retry_after,
        )
        response.headers["Retry-After"] = str(retry_after)
        return response

    app.extensions["videobatch.limiter"] = limiter
    return limiter


def _seconds_until_reset(limiter: Limiter) -> int:
    """Whole seconds until the breached limit lets a request through again (at least 1)."""
    current = limiter.current_limit
    if current is None:
        return 1
    # The window's own reset time: RequestLimit.reset_at is rounded up a further second.
    return max(1, math.ceil(current.window.reset_time - time.time()))
