"""Video providers: what turns a prompt into a video.

A provider is any object with a ``name`` and a ``generate(task) -> GenerationResult`` method.
``VIDEO_PROVIDER`` chooses it: ``simulated`` (built in), or ``package.module:factory`` for your own,
where ``factory(config)`` returns the provider. docs/WORKERS.md shows a real backend plugged in.

The contract a provider keeps:

- ``generate`` returns a ``GenerationResult`` with a URL where the finished video can be fetched;
- it raises ``ProviderError(code, message, retryable=...)`` for a failure it understands
  (``retryable=False`` for one that will fail again: a rejected prompt, say); any other exception
  counts as a retryable ``provider_error``;
- it checks ``task.stop_requested`` in any long wait and gives up when it is set (the batch was
  cancelled, the lease was lost, or the worker is being stopped): its result would be refused;
- it may be called from several threads at once, one task per call, and must be idempotent for
  the same ``task_id``: a task whose worker died runs again.
"""

from __future__ import annotations

import importlib
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from videobatch.config import Config, ConfigError


@dataclass(frozen=True)
class GenerationTask:
    """One video to make: the claimed task as a provider sees it."""

    task_id: uuid.UUID
    batch_id: uuid.UUID
    position: int
    prompt: str
    params: dict[str, Any]
    attempt: int
    max_attempts: int
    stop_requested: threading.Event = field(default_factory=threading.Event, compare=False)


@dataclass(frozen=True)
class GenerationResult:
    video_url: str


class ProviderError(Exception):
    """A failure the provider understands; ``retryable`` says whether another attempt may work."""

    def __init__(self, code: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


class VideoProvider(Protocol):
    name: str

    def generate(self, task: GenerationTask) -> GenerationResult: ...


def load_provider(config: Config) -> VideoProvider:
    """The provider ``VIDEO_PROVIDER`` names."""
    name = config.video_provider
    if name == "simulated":
        from videobatch.worker.providers.simulated import SimulatedProvider

        return SimulatedProvider.from_config(config)
    module_name, _, factory_name = name.partition(":")
    if not module_name or not factory_name:
        raise ConfigError(
            f"VIDEO_PROVIDER must be 'simulated' or 'package.module:factory', got {name!r}"
        )
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"VIDEO_PROVIDER {name!r} cannot be loaded: {error}") from None
    return factory(config)
