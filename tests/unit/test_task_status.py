"""The rules a batch's status and a task's retries follow (SPEC 6), as properties."""

from __future__ import annotations

import random
import uuid

from hypothesis import given
from hypothesis import strategies as st

from videobatch.services.batches import derive_status
from videobatch.services.tasks import RetryPolicy
from videobatch.worker.providers import GenerationTask
from videobatch.worker.providers.simulated import SimulatedProvider, simulated_video_url

ENDED = ("completed", "failed", "cancelled")

task_counts = st.fixed_dictionaries(
    {status: st.integers(0, 50) for status in ("queued", "processing", *ENDED)}
).filter(lambda counts: sum(counts.values()) > 0)
current_status = st.sampled_from(["queued", "processing"])


@given(task_counts, current_status, st.booleans())
def test_batch_with_open_tasks_is_queued_or_processing(counts, current, cancel_requested):
    total = sum(counts.values())
    status = derive_status(counts, total, current=current, cancel_requested=cancel_requested)
    if counts["queued"] + counts["processing"]:
        assert status in ("queued", "processing")
    else:
        assert status in ("completed", "failed", "partially_completed", "cancelled")


@given(task_counts, st.booleans())
def test_a_started_batch_never_goes_back_to_queued(counts, cancel_requested):
    status = derive_status(
        counts, sum(counts.values()), current="processing", cancel_requested=cancel_requested
    )
    assert status != "queued"


@given(task_counts, current_status)
def test_batch_is_queued_only_while_every_task_waits(counts, current):
    status = derive_status(counts, sum(counts.values()), current=current, cancel_requested=False)
    if status == "queued":
        assert counts["queued"] == sum(counts.values()) and current == "queued"


@given(
    st.fixed_dictionaries({status: st.integers(0, 50) for status in ENDED}).filter(
        lambda counts: sum(counts.values()) > 0
    ),
    st.booleans(),
)
def test_ended_batch_status_follows_its_tasks(counts, cancel_requested):
    total = sum(counts.values())
    status = derive_status(counts, total, current="processing", cancel_requested=cancel_requested)
    if cancel_requested and counts["cancelled"]:
        assert status == "cancelled"
    elif counts["completed"] == total:
        assert status == "completed"
    elif counts["failed"] == total:
        assert status == "failed"
    else:
        assert status == "partially_completed"
        assert counts["completed"] + counts["failed"] + counts["cancelled"] == total


def test_derive_status_examples():
    def status(current="processing", cancel=False, **counts):
        return derive_status(counts, sum(counts.values()), current=current, cancel_requested=cancel)

    assert status(current="queued", queued=2) == "queued"
    assert status(current="queued", queued=1, processing=1) == "processing"
    assert status(queued=2) == "processing"  # both retried after a start
    assert status(completed=2) == "completed"
    assert status(failed=2) == "failed"
    assert status(completed=1, failed=1) == "partially_completed"
    assert status(cancel=True, completed=1, cancelled=1) == "cancelled"


@given(
    st.integers(1, 30),
    st.floats(0.01, 10),
    st.floats(1, 1000),
    st.integers(0, 2**32),
)
def test_retry_delay_grows_exponentially_within_jitter_bounds(attempt, base, cap, seed):
    policy = RetryPolicy(base_delay_s=base, max_delay_s=cap)
    ceiling = min(cap, base * 2 ** (attempt - 1))
    delay = policy.delay(attempt, random.Random(seed))
    assert ceiling / 2 <= delay <= ceiling


def _task(position: int, prompt: str = "a cat", attempt: int = 1) -> GenerationTask:
    return GenerationTask(
        task_id=uuid.uuid4(),
        batch_id=uuid.uuid4(),
        position=position,
        prompt=prompt,
        params={},
        attempt=attempt,
        max_attempts=3,
    )


def test_simulated_provider_fails_about_the_configured_share_the_same_way_every_time():
    provider = SimulatedProvider(failure_rate=0.3, seed=7)
    tasks = [_task(position) for position in range(2000)]
    picked = [provider.fails(task) for task in tasks]
    assert 0.25 < sum(picked) / len(picked) < 0.35
    again = SimulatedProvider(failure_rate=0.3, seed=7)
    assert [again.fails(_task(t.position, attempt=3)) for t in tasks] == picked
    other_seed = SimulatedProvider(failure_rate=0.3, seed=8)
    assert [other_seed.fails(task) for task in tasks] != picked
    assert not any(SimulatedProvider(failure_rate=0.0).fails(task) for task in tasks)
    assert all(SimulatedProvider(failure_rate=1.0).fails(task) for task in tasks)


def test_simulated_video_url_is_deterministic():
    task = _task(0)
    result = SimulatedProvider().generate(task)
    assert result.video_url == simulated_video_url(task.task_id)
    assert result.video_url == SimulatedProvider(seed=99).generate(task).video_url
