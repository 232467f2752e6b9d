"""Configuration: read from the environment once, here and nowhere else."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

PRODUCTION_REQUIRED = ("DATABASE_URL", "REDIS_URL", "INTERNAL_WORKER_SECRET", "API_KEY_PEPPER")
# A worker process reaches tasks through the internal API only: it needs no database or Redis.
WORKER_REQUIRED = ("WORKER_API_URL", "INTERNAL_WORKER_SECRET")


class ConfigError(RuntimeError):
    """The environment does not describe a service that may start."""


def _int(environ: dict[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _float(environ: dict[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class Config:
    """Every setting videobatch reads; see the README's configuration table."""

    env: str = "development"
    database_url: str = ""
    redis_url: str = ""  # empty: an in-process fake Redis (single process only)
    internal_worker_secret: str = ""
    api_key_pepper: str = ""
    var_dir: str = "var"
    cost_per_video: int = 10
    max_items_per_batch: int = 1000
    max_content_length: int = 2 * 1024 * 1024
    idempotency_wait_ms: int = 2000
    idempotency_ttl_s: int = 86_400
    idempotency_lock_ttl_ms: int = 30_000
    api_key_cache_ttl_s: float = 5.0
    max_attempts: int = 3
    retry_base_delay_s: float = 2.0
    retry_max_delay_s: float = 300.0
    video_provider: str = "simulated"
    simulated_delay_ms: int = 200
    simulated_failure_rate: float = 0.0
    simulated_seed: int = 0
    log_level: str = "INFO"
    worker_api_url: str = "http://127.0.0.1:8000"  # where `videobatch worker` finds the API
    # Every call to a dependency is bounded, so a stuck one costs a 503, never a hung thread.
    db_connect_timeout_s: int = 5
    db_statement_timeout_ms: int = 15_000
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_pool_timeout_s: float = 5.0
    redis_socket_timeout_s: float = 0.5
    readiness_timeout_s: float = 2.0
    rate_limit_enabled: bool = True
    rate_limit_default: str = "6000 per minute"  # per API key, across the public API
    rate_limit_internal: str = "60000 per minute"  # per worker host, across the internal API
    prometheus_multiproc_dir: str = ""  # set under gunicorn: metrics summed over its workers

    @property
    def production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(
        cls,
        environ: dict[str, str] | None = None,
        *,
        required: tuple[str, ...] = PRODUCTION_REQUIRED,
    ) -> Config:
        """Build the configuration from the environment (``os.environ`` by default)."""
        env = dict(os.environ if environ is None else environ)
        mode = env.get("VIDEOBATCH_ENV", "development")
        if mode == "production":
            missing = [name for name in required if not env.get(name)]
            if missing:
                raise ConfigError(
                    "VIDEOBATCH_ENV=production needs " + ", ".join(missing) + "; refusing to start"
                )
        var_dir = env.get("VIDEOBATCH_VAR_DIR", "var")
        return cls(
            env=mode,
            database_url=env.get("DATABASE_URL")
            or f"sqlite:///{Path(var_dir).resolve()}/videobatch.db",
            redis_url=env.get("REDIS_URL", ""),
            internal_worker_secret=env.get("INTERNAL_WORKER_SECRET", ""),
            api_key_pepper=env.get("API_KEY_PEPPER", ""),
            var_dir=var_dir,
            cost_per_video=_int(env, "COST_PER_VIDEO", 10),
            max_items_per_batch=_int(env, "MAX_ITEMS_PER_BATCH", 1000),
            max_content_length=_int(env, "MAX_CONTENT_LENGTH", 2 * 1024 * 1024),
            idempotency_wait_ms=_int(env, "IDEMPOTENCY_WAIT_MS", 2000),
            idempotency_ttl_s=_int(env, "IDEMPOTENCY_TTL_S", 86_400),
            idempotency_lock_ttl_ms=_int(env, "IDEMPOTENCY_LOCK_TTL_MS", 30_000),
            api_key_cache_ttl_s=_float(env, "API_KEY_CACHE_TTL_S", 5.0),
            max_attempts=_int(env, "MAX_ATTEMPTS", 3),
            retry_base_delay_s=_float(env, "RETRY_BASE_DELAY_S", 2.0),
            retry_max_delay_s=_float(env, "RETRY_MAX_DELAY_S", 300.0),
            video_provider=env.get("VIDEO_PROVIDER", "simulated"),
            simulated_delay_ms=_int(env, "SIMULATED_DELAY_MS", 200),
            simulated_failure_rate=_float(env, "SIMULATED_FAILURE_RATE", 0.0),
            simulated_seed=_int(env, "SIMULATED_SEED", 0),
            log_level=env.get("LOG_LEVEL", "INFO"),
            worker_api_url=env.get("WORKER_API_URL", "http://127.0.0.1:8000"),
            db_connect_timeout_s=_int(env, "DB_CONNECT_TIMEOUT_S", 5),
            db_statement_timeout_ms=_int(env, "DB_STATEMENT_TIMEOUT_MS", 15_000),
            db_pool_size=_int(env, "DB_POOL_SIZE", 10),
            db_max_overflow=_int(env, "DB_MAX_OVERFLOW", 10),
            db_pool_timeout_s=_float(env, "DB_POOL_TIMEOUT_S", 5.0),
            redis_socket_timeout_s=_float(env, "REDIS_SOCKET_TIMEOUT_S", 0.5),
            readiness_timeout_s=_float(env, "READINESS_TIMEOUT_S", 2.0),
            rate_limit_enabled=env.get("RATE_LIMIT_ENABLED", "1") not in ("0", "false", "no"),
            rate_limit_default=env.get("RATE_LIMIT_DEFAULT", "6000 per minute"),
            rate_limit_internal=env.get("RATE_LIMIT_INTERNAL", "60000 per minute"),
            prometheus_multiproc_dir=env.get("PROMETHEUS_MULTIPROC_DIR", ""),
        )

    def with_embedded_secrets(self) -> Config:
        """Fill the secrets the embedded default needs from ``var/secrets.json``.

        They are generated once and kept, so API keys stay valid across restarts. Production
        never reaches this: it refuses to start without its secrets instead.
        """
        if self.production or (self.api_key_pepper and self.internal_worker_secret):
            return self
        path = Path(self.var_dir) / "secrets.json"
        stored: dict[str, str] = {}
        if path.exists():
            stored = json.loads(path.read_text())
        changed = False
        for name in ("api_key_pepper", "internal_worker_secret"):
            if not stored.get(name):
                stored[name] = secrets.token_urlsafe(32)
                changed = True
        if changed:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(stored, indent=2))
            path.chmod(0o600)
        return replace(
            self,
            api_key_pepper=self.api_key_pepper or stored["api_key_pepper"],
            internal_worker_secret=self.internal_worker_secret or stored["internal_worker_secret"],
        )

    def replace(self, **changes: Any) -> Config:
        """A copy with some settings changed (tests and the embedded default use it)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ConfigError(f"unknown settings: {sorted(unknown)}")
        return replace(self, **changes)
