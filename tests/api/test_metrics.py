"""/metrics: Prometheus text whose counters move with what the service does."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEST_SECRET
from tests.factories import batch_body, make_account
from videobatch.db import utcnow
from videobatch.metrics import QueueCollector
from videobatch.services.tasks import reap_expired_leases

CREATE = "/api/enterprise/video-batch"


def scrape(client) -> dict[tuple[str, tuple], float]:
    """Every sample on /metrics, keyed by (name, sorted labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before, after, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_counters_move_with_create_replay_conflict_and_refund(app, client):
    account = make_account(app)
    headers = {"x-api-key": account.api_key, "x-request-id": "metrics-1"}
    before = scrape(client)

    created = client.post(CREATE, json=batch_body(3), headers=headers)
    assert created.status_code == 201
    assert client.post(CREATE, json=batch_body(3), headers=headers).status_code == 200
    assert client.post(CREATE, json=batch_body(1), headers=headers).status_code == 422
    batch_id = created.get_json()["batch_id"]
    cancelled = client.post(f"{CREATE}/{batch_id}/cancel", headers=headers)
    assert cancelled.status_code == 200
    after = scrape(client)

    assert moved(before, after, "videobatch_batches_created_total") == 1
    assert moved(before, after, "videobatch_idempotent_replays_total") == 1
    assert moved(before, after, "videobatch_credits_charged_total") == 30
    assert moved(before, after, "videobatch_credits_refunded_total") == 30
    assert (
        moved(before, after, "videobatch_errors_total", status="422", code="idempotency_key_reused")
        == 1
    )
    route = {"method": "POST", "route": CREATE}
    assert moved(before, after, "videobatch_http_requests_total", status="201", **route) == 1
    assert moved(before, after, "videobatch_http_requests_total", status="200", **route) == 1
    assert moved(before, after, "videobatch_http_requests_total", status="422", **route) == 1
    assert moved(before, after, "videobatch_http_request_duration_seconds_count", **route) == 3


def test_a_failed_create_counts_no_charge(app, client):
    account = make_account(app, credits=5)
    before = scrape(client)
    response = client.post(
        CREATE, json=batch_body(2), headers={"x-api-key": account.api_key, "x-request-id": "poor"}
    )
    assert response.status_code == 402
    after = scrape(client)
    assert moved(before, after, "videobatch_credits_charged_total") == 0
    assert moved(before, after, "videobatch_batches_created_total") == 0
    assert (
        moved(before, after, "videobatch_errors_total", status="402", code="insufficient_credits")
        == 1
    )


def test_queue_gauges_are_read_from_the_database(app, client):
    account = make_account(app)
    headers = {"x-api-key": account.api_key, "x-request-id": "gauges-1"}
    assert client.post(CREATE, json=batch_body(4), headers=headers).status_code == 201

    samples = scrape(client)
    assert value(samples, "videobatch_database_up") == 1
    assert value(samples, "videobatch_tasks", status="queued") == 4
    assert value(samples, "videobatch_tasks", status="completed") == 0
    assert value(samples, "videobatch_queue_depth") == 4
    assert value(samples, "videobatch_oldest_queued_task_age_seconds") >= 0
    assert value(samples, "videobatch_leases_lapsed") == 0


def test_requests_are_labelled_by_route_pattern_not_raw_path(app, client):
    account = make_account(app)
    headers = {"x-api-key": account.api_key}
    for _ in range(2):
        client.get(f"{CREATE}/6f0a3c0e-0000-4000-8000-{_:012d}", headers=headers)
    client.get("/no/such/path")
    samples = scrape(client)
    routes = {
        dict(labels).get("route")
        for name, labels in samples
        if name == "videobatch_http_requests_total"
    }
    assert f"{CREATE}/<uuid:batch_id>" in routes
    assert "unmatched" in routes
    assert not any("6f0a3c0e" in (route or "") for route in routes)


def test_lease_expiries_are_counted_when_the_reaper_settles_them(app, client):
    account = make_account(app)
    headers = {"x-api-key": account.api_key, "x-request-id": "leases-1"}
    assert client.post(CREATE, json=batch_body(2), headers=headers).status_code == 201
    claimed = client.post(
        "/api/internal/tasks/claim",
        json={"worker_id": "w-lost", "max_tasks": 2, "lease_seconds": 1},
        headers={"x-internal-secret": TEST_SECRET},
    )
    assert len(claimed.get_json()["tasks"]) == 2
    later = utcnow() + timedelta(seconds=30)
    lapsed = QueueCollector(app.extensions["videobatch.db"], clock=lambda: later)
    gauges = {sample.name: sample.value for family in lapsed.collect() for sample in family.samples}
    assert gauges["videobatch_leases_lapsed"] == 2
    before = scrape(client)

    with app.extensions["videobatch.db"].transaction() as session:
        report = reap_expired_leases(session, now=later)
    assert report.requeued == 2
    after = scrape(client)
    assert moved(before, after, "videobatch_lease_expiries_total") == 2
