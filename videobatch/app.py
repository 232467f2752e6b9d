"""The application factory."""

from __future__ import annotations

from flask import Flask

from videobatch.auth import ApiKeyVerifier
from videobatch.config import Config
from videobatch.extensions import Database, RedisHolder
from videobatch.services.idempotency import IdempotencyGate


def create_app(config: Config | None = None) -> Flask:
    """Build the WSGI app from ``config`` (by default, from the environment)."""
    config = config or Config.from_env().with_embedded_secrets()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_content_length
    app.json.sort_keys = False  # answers keep the field order of their schema
    register_extensions(app, config)
    register_observability(app)
    register_blueprints(app)
    register_rate_limits(app, config)
    register_errors(app)
    register_cli(app)
    return app


def register_extensions(app: Flask, config: Config) -> None:
    from videobatch.logs import configure_logging

    configure_logging(config.log_level, [config.internal_worker_secret, config.api_key_pepper])
    database = Database()
    database.init(config)
    redis_holder = RedisHolder()
    redis_holder.init(config)
    app.extensions["videobatch.config"] = config
    app.extensions["videobatch.db"] = database
    app.extensions["videobatch.redis"] = redis_holder
    app.extensions["videobatch.api_keys"] = ApiKeyVerifier(
        config.api_key_pepper, config.api_key_cache_ttl_s
    )
    app.extensions["videobatch.idempotency"] = IdempotencyGate(
        redis_holder.get(),
        ttl_s=config.idempotency_ttl_s,
        lock_ttl_ms=config.idempotency_lock_ttl_ms,
        wait_ms=config.idempotency_wait_ms,
    )


def register_blueprints(app: Flask) -> None:
    from videobatch.api import docs, enterprise, health, internal

    app.register_blueprint(health.bp)
    app.register_blueprint(enterprise.bp)
    app.register_blueprint(internal.bp)
    app.register_blueprint(docs.bp)


def register_observability(app: Flask) -> None:
    # Registered before the rate limiter's hook so that a limited request is logged and counted.
    from videobatch.logs import register_request_logging
    from videobatch.metrics import register_request_metrics

    register_request_logging(app)
    register_request_metrics(app)


def register_rate_limits(app: Flask, config: Config) -> None:
    # After the blueprints: the limits attach to them by name.
    from videobatch.rate_limits import register_rate_limits as attach_limiter

    attach_limiter(app, config)


def register_errors(app: Flask) -> None:
    from videobatch.errors import register_error_handlers

    register_error_handlers(app)


def register_cli(app: Flask) -> None:
    from videobatch.cli import register_commands

    register_commands(app)
