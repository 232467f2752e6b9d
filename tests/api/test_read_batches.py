"""Reading batches back and the credit ledger, on both tiers: SPEC 4.4, 4.5 and 4.7."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update

from tests.factories import batch_body, ledger_state, make_account
from videobatch.models import BatchJob, VideoTask

URL = "/api/enterprise/video-batch"


def create(client, key, request_id, body=None):
    response = client.post(
        URL,
        json=body or batch_body(),
        headers={"x-api-key": key, "x-request-id": request_id},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["batch_id"]


def get(client, key, path, **params):
    return client.get(path, query_string=params, headers={"x-api-key": key})


def test_batch_answers_counts_and_tasks(app, client):
    account = make_account(app)
    body = {
        "items": [{"prompt": "a", "client_ref": "row-1"}, {"prompt": "b"}],
        "metadata": {"k": "v"},
    }
    batch_id = create(client, account.api_key, "r1", body)
    answer = get(client, account.api_key, f"{URL}/{batch_id}")
    assert answer.status_code == 200
    batch = answer.get_json()
    assert batch["batch_id"] == batch_id
    assert batch["status"] == "queued"
    assert batch["counts"] == {
        "queued": 2,
        "processing": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert batch["metadata"] == {"k": "v"}
    assert batch["finished_at"] is None
    assert batch["available_credits"] == 980
    assert [task["position"] for task in batch["tasks"]] == [0, 1]
    assert batch["tasks"][0]["client_ref"] == "row-1"
    assert batch["tasks"][0]["prompt"] == "a"
    assert batch["tasks"][1]["client_ref"] is None
    assert batch["tasks"][0]["error"] is None


def test_failed_task_shows_its_error(app, client):
    account = make_account(app)
    batch_id = create(client, account.api_key, "r1", batch_body(1))
    with app.extensions["videobatch.db"].transaction() as session:
        session.execute(
            update(VideoTask)
            .where(VideoTask.batch_id == uuid.UUID(batch_id))
            .values(status="failed", error_code="provider_error", error_message="boom")
        )
    task = get(client, account.api_key, f"{URL}/{batch_id}").get_json()["tasks"][0]
    assert task["error"] == {"code": "provider_error", "message": "boom"}


@pytest.mark.parametrize("batch_id", ["not-a-uuid", "123", str(uuid.uuid4()), "%00", "' or 1=1"])
def test_missing_or_malformed_batch_id_is_404(app, client, batch_id):
    account = make_account(app)
    answer = get(client, account.api_key, f"{URL}/{batch_id}")
    assert answer.status_code == 404
    assert answer.get_json()["code"] == "not_found"
    assert answer.content_type == "application/problem+json"


def test_another_accounts_batch_is_404_like_a_missing_one(app, client):
    owner = make_account(app, name="owner")
    other = make_account(app, name="other")
    batch_id = create(client, owner.api_key, "r1")
    for path in (f"{URL}/{batch_id}", f"{URL}/{uuid.uuid4()}"):
        answer = get(client, other.api_key, path)
        assert answer.status_code == 404
        assert answer.get_json()["code"] == "not_found"
    assert get(client, other.api_key, URL).get_json()["data"] == []
    assert get(client, other.api_key, URL, starting_after=batch_id).status_code == 404


def test_list_is_newest_first_and_pages_with_a_cursor(app, client):
    account = make_account(app)
    created = [create(client, account.api_key, f"r{i}", batch_body(1)) for i in range(5)]
    first = get(client, account.api_key, URL, limit=2).get_json()
    assert [batch["batch_id"] for batch in first["data"]] == created[::-1][:2]
    assert first["has_more"] is True
    assert "tasks" not in first["data"][0]
    assert first["data"][0]["counts"]["queued"] == 1
    second = get(client, account.api_key, URL, limit=2, starting_after=created[3]).get_json()
    assert [batch["batch_id"] for batch in second["data"]] == [created[2], created[1]]
    last = get(client, account.api_key, URL, limit=2, starting_after=created[1]).get_json()
    assert [batch["batch_id"] for batch in last["data"]] == [created[0]]
    assert last["has_more"] is False


def test_list_defaults_to_twenty(app, client):
    account = make_account(app, credits=10_000)
    for i in range(21):
        create(client, account.api_key, f"r{i}", batch_body(1))
    page = get(client, account.api_key, URL).get_json()
    assert len(page["data"]) == 20
    assert page["has_more"] is True


def test_list_filters_by_status(app, client):
    account = make_account(app)
    queued = create(client, account.api_key, "r1", batch_body(1))
    done = create(client, account.api_key, "r2", batch_body(1))
    with app.extensions["videobatch.db"].transaction() as session:
        session.execute(
            update(BatchJob).where(BatchJob.id == uuid.UUID(done)).values(status="completed")
        )
    for status, expected in (("completed", [done]), ("queued", [queued]), ("failed", [])):
        page = get(client, account.api_key, URL, status=status).get_json()
        assert [batch["batch_id"] for batch in page["data"]] == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"starting_after": "nope"}, "starting_after"),
        ({"status": "done"}, "status"),
    ],
)
def test_list_rejects_bad_parameters(app, client, params, field):
    account = make_account(app)
    answer = get(client, account.api_key, URL, **params)
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["code"] == "validation_error"
    assert field in body["errors"]


def test_list_limits_are_inclusive(app, client):
    account = make_account(app)
    create(client, account.api_key, "r1", batch_body(1))
    assert get(client, account.api_key, URL, limit=1).status_code == 200
    assert get(client, account.api_key, URL, limit=100).status_code == 200


def test_unknown_cursor_is_404(app, client):
    account = make_account(app)
    answer = get(client, account.api_key, URL, starting_after=str(uuid.uuid4()))
    assert answer.status_code == 404


def test_reading_needs_an_api_key(app, client):
    for path in (URL, f"{URL}/{uuid.uuid4()}", "/api/enterprise/credits"):
        assert client.get(path).status_code == 401


def test_credits_answer_balance_and_ledger_newest_first(app, client):
    account = make_account(app, credits=1000)
    create(client, account.api_key, "r1", batch_body(2))
    create(client, account.api_key, "r2", batch_body(3))
    credits = get(client, account.api_key, "/api/enterprise/credits").get_json()
    assert credits["available_credits"] == 950
    assert [entry["kind"] for entry in credits["ledger"]] == ["charge", "charge", "grant"]
    assert [entry["delta"] for entry in credits["ledger"]] == [-30, -20, 1000]
    assert [entry["balance_after"] for entry in credits["ledger"]] == [950, 980, 1000]
    assert credits["has_more"] is False
    state = ledger_state(app, account.account_id)
    assert state["balance"] == state["ledger_sum"] == credits["available_credits"]


def test_credits_ledger_pages(app, client):
    account = make_account(app, credits=1000)
    for i in range(3):
        create(client, account.api_key, f"r{i}", batch_body(1))
    path = "/api/enterprise/credits"
    first = get(client, account.api_key, path, limit=3).get_json()
    assert first["has_more"] is True
    rest = get(
        client, account.api_key, path, limit=3, starting_after=first["ledger"][-1]["entry_id"]
    ).get_json()
    assert rest["has_more"] is False
    seen = [entry["entry_id"] for entry in first["ledger"] + rest["ledger"]]
    assert len(seen) == len(set(seen)) == 4
    assert rest["ledger"][-1]["kind"] == "grant"
    assert get(client, account.api_key, path, limit=101).status_code == 400


def test_credits_of_another_account_are_not_visible(app, client):
    owner = make_account(app, name="owner")
    other = make_account(app, name="other", credits=5)
    grant = get(client, owner.api_key, "/api/enterprise/credits").get_json()["ledger"][0]
    answer = get(client, other.api_key, "/api/enterprise/credits", starting_after=grant["entry_id"])
    assert answer.status_code == 404
    mine = get(client, other.api_key, "/api/enterprise/credits").get_json()
    assert mine["available_credits"] == 5
    assert [entry["delta"] for entry in mine["ledger"]] == [5]
