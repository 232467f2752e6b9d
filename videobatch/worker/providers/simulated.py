"""The built-in provider: no model, a configurable delay, a seeded share of failures."""

from __future__ import annotations

import hashlib

from videobatch.config import Config
from videobatch.worker.providers import GenerationResult, GenerationTask, ProviderError

VIDEO_BASE_URL = "https://videos.videobatch.invalid/simulated"


def simulated_video_url(task_id: object) -> str:
    """Where the simulated provider says a task's video is: the same URL for the same task."""
    return f"{VIDEO_BASE_URL}/{task_id}.mp4"


class SimulatedProvider:
    """Waits ``delay_ms``, then succeeds, or fails the tasks the seed picks.

    Which tasks fail depends only on (seed, prompt, position), not on the attempt: a task picked
    to fail fails every attempt, so with a failure rate r about r of the tasks end ``failed``
    after their retries, and the same seed picks the same tasks on every run.
    """

    name = "simulated"

    def __init__(self, *, delay_ms: int = 0, failure_rate: float = 0.0, seed: int = 0) -> None:
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("the failure rate is a fraction between 0 and 1")
        self.delay_s = max(delay_ms, 0) / 1000
        self.failure_rate = failure_rate
        self.seed = seed

    @classmethod
    def from_config(cls, config: Config) -> SimulatedProvider:
        return cls(
            delay_ms=config.simulated_delay_ms,
            failure_rate=config.simulated_failure_rate,
            seed=config.simulated_seed,
        )

    def fails(self, task: GenerationTask) -> bool:
        """Whether the seed picks this task to fail."""
        digest = hashlib.sha256(f"{self.seed}:{task.position}:{task.prompt}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.failure_rate

    def generate(self, task: GenerationTask) -> GenerationResult:
        if self.delay_s and task.stop_requested.wait(self.delay_s):
            raise ProviderError("stopped", "Generation stopped before it finished")
        if self.fails(task):
            raise ProviderError(
                "simulated_failure",
                f"The simulated provider fails this task (seed {self.seed})",
                retryable=True,
            )
        return GenerationResult(video_url=simulated_video_url(task.task_id))
