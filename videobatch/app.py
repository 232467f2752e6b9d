"""The application factory."""

from __future__ import annotations

import logging

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
    register_blueprints(app)
    register_errors(app)
    register_cli(app)
    return app


def register_extensions(app: Flask, config: Config) -> None:
    logging.basicConfig(level=config.log_level)
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
    from videobatch.api import docs, enterprise, health

    app.register_blueprint(health.bp)
    app.register_blueprint(enterprise.bp)
    app.register_blueprint(docs.bp)


def register_errors(app: Flask) -> None:
    from videobatch.errors import register_error_handlers

    register_error_handlers(app)


def register_cli(app: Flask) -> None:
    from videobatch.cli import register_commands

    register_commands(app)
