"""POST /api/enterprise/video-batch on both tiers: SPEC 4.1-4.3 and 5."""

from __future__ import annotations

import pytest

from tests.factories import batch_body, ledger_state, make_account

URL = "/api/enterprise/video-batch"


def post(client, key, request_id="req-1", body=None, **headers):
    sent = {"x-api-key": key, **headers}
    if request_id is not None:
        sent["x-request-id"] = request_id
    return client.post(URL, json=body if body is not None else batch_body(), headers=sent)


def test_first_create_returns_201_with_charge(app, client):
    account = make_account(app, credits=1000)
    response = post(client, account.api_key, "test-1705747200")
    assert response.status_code == 201
    body = response.get_json()
    assert body["ok"] is True
    assert body["idempotent_replay"] is False
    assert body["status"] == "queued"
    assert (body["total_count"], body["cost_per_video"], body["required_credits"]) == (2, 10, 20)
    assert body["available_credits"] == 980
    assert body["request_id"] == "test-1705747200"
    assert body["created_at"].endswith("Z")
    assert "Idempotent-Replayed" not in response.headers
    assert ledger_state(app, account.account_id) == {
        "balance": 980,
        "ledger_sum": 980,
        "charges": 1,
        "batches": 1,
        "tasks": 2,
    }


def test_replay_with_same_request_id_returns_same_batch(app, client):
    account = make_account(app)
    first = post(client, account.api_key).get_json()
    replay = post(client, account.api_key)
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    body = replay.get_json()
    assert body["idempotent_replay"] is True
    assert body["batch_id"] == first["batch_id"]
    assert body["required_credits"] == 20
    assert body["available_credits"] == 980
    assert ledger_state(app, account.account_id)["charges"] == 1
    assert ledger_state(app, account.account_id)["tasks"] == 2


def test_replay_ignores_key_order_and_whitespace(app, client):
    account = make_account(app)
    post(
        client,
        account.api_key,
        body={"metadata": {"b": "2", "a": "1"}, "items": [{"style": "noir", "prompt": "x"}]},
    )
    raw = '{ "items" : [ {"prompt":"x", "style":"noir"} ], "metadata": {"a":"1","b":"2"} }'
    response = client.post(
        URL,
        data=raw,
        content_type="application/json",
        headers={"x-api-key": account.api_key, "x-request-id": "req-1"},
    )
    assert response.status_code == 200


def test_replay_after_cache_loss_reads_database(app, client):
    account = make_account(app)
    first = post(client, account.api_key).get_json()
    app.extensions["videobatch.redis"].get().flushdb()
    replay = post(client, account.api_key)
    assert replay.status_code == 200
    assert replay.get_json()["batch_id"] == first["batch_id"]
    assert ledger_state(app, account.account_id)["charges"] == 1


def test_replay_reports_current_balance(app, client):
    account = make_account(app)
    post(client, account.api_key, "a")
    post(client, account.api_key, "b")
    replay = post(client, account.api_key, "a").get_json()
    assert replay["available_credits"] == 960


def test_same_request_id_with_different_payload_is_422_and_writes_nothing(app, client):
    account = make_account(app)
    post(client, account.api_key)
    response = post(client, account.api_key, body=batch_body(3))
    assert response.status_code == 422
    assert response.get_json()["code"] == "idempotency_key_reused"
    assert ledger_state(app, account.account_id)["batches"] == 1
    assert ledger_state(app, account.account_id)["balance"] == 980


def test_defaults_count_as_the_same_payload(app, client):
    account = make_account(app)
    post(client, account.api_key, body={"items": [{"prompt": "x"}]})
    response = post(
        client,
        account.api_key,
        body={"items": [{"prompt": "x", "duration_seconds": 5}], "metadata": {}},
    )
    assert response.status_code == 200


def test_request_ids_are_scoped_per_account(app, client):
    first, second = make_account(app, name="a"), make_account(app, name="b")
    one = post(client, first.api_key, "shared").get_json()
    two = post(client, second.api_key, "shared")
    assert two.status_code == 201
    assert two.get_json()["batch_id"] != one["batch_id"]


def test_request_ids_are_case_sensitive(app, client):
    account = make_account(app)
    post(client, account.api_key, "Req")
    assert post(client, account.api_key, "req").status_code == 201


# -- request ids (SPEC 4.2) --------------------------------------------------------------------


def test_missing_request_id_is_400(app, client):
    account = make_account(app)
    response = post(client, account.api_key, request_id=None)
    assert response.status_code == 400
    assert response.get_json()["code"] == "request_id_required"


def test_idempotency_key_header_is_accepted_bare_or_quoted(app, client):
    account = make_account(app)
    created = post(client, account.api_key, request_id=None, **{"Idempotency-Key": '"k-1"'})
    assert created.status_code == 201
    replay = post(client, account.api_key, request_id=None, **{"Idempotency-Key": "k-1"})
    assert replay.status_code == 200
    assert replay.get_json()["request_id"] == "k-1"


def test_both_headers_equal_is_fine(app, client):
    account = make_account(app)
    response = post(client, account.api_key, "same", **{"Idempotency-Key": "same"})
    assert response.status_code == 201


def test_both_headers_differing_is_400_conflict(app, client):
    account = make_account(app)
    response = post(client, account.api_key, "one", **{"Idempotency-Key": "two"})
    assert response.status_code == 400
    assert response.get_json()["code"] == "request_id_conflict"
    assert ledger_state(app, account.account_id)["batches"] == 0


@pytest.mark.parametrize("request_id", ["", "has space", "tab\there", "x" * 256, "caf\u00e9"])
def test_malformed_request_ids_are_400(app, client, request_id):
    account = make_account(app)
    headers = {"x-api-key": account.api_key, "x-request-id": request_id}
    response = client.post(URL, json=batch_body(), headers=headers)
    assert response.status_code == 400
    assert response.get_json()["code"] in ("invalid_request_id", "request_id_required")


@pytest.mark.parametrize("request_id", ["a", "x" * 255, "!~", "order-17/retry#2"])
def test_well_formed_request_ids_are_accepted(app, client, request_id):
    account = make_account(app)
    assert post(client, account.api_key, request_id).status_code == 201


def test_failures_before_commit_do_not_claim_the_request_id(app, client):
    account = make_account(app, credits=10)
    assert post(client, account.api_key, "r", body=batch_body(2)).status_code == 402
    assert post(client, account.api_key, "r", body={"items": []}).status_code == 400
    # The same id now works with a body the balance covers.
    assert post(client, account.api_key, "r", body=batch_body(1)).status_code == 201


# -- credits ----------------------------------------------------------------------------------


def test_insufficient_credits_is_402_and_writes_nothing(app, client):
    account = make_account(app, credits=15)
    response = post(client, account.api_key)
    assert response.status_code == 402
    body = response.get_json()
    assert response.content_type == "application/problem+json"
    assert body["code"] == "insufficient_credits"
    assert (body["required_credits"], body["available_credits"]) == (20, 15)
    assert body["detail"] == "20 credits required, 15 available"
    assert body["request_id"] == "req-1"
    assert ledger_state(app, account.account_id) == {
        "balance": 15,
        "ledger_sum": 15,
        "charges": 0,
        "batches": 0,
        "tasks": 0,
    }


def test_exact_balance_is_enough(app, client):
    account = make_account(app, credits=20)
    response = post(client, account.api_key)
    assert response.status_code == 201
    assert response.get_json()["available_credits"] == 0


def test_account_cost_per_video_is_used(app, client):
    account = make_account(app, credits=100, cost_per_video=7)
    body = post(client, account.api_key, body=batch_body(3)).get_json()
    assert (body["cost_per_video"], body["required_credits"], body["available_credits"]) == (
        7,
        21,
        79,
    )


# -- authentication ---------------------------------------------------------------------------


def test_missing_api_key_is_401(app, client):
    response = client.post(URL, json=batch_body(), headers={"x-request-id": "r"})
    assert response.status_code == 401
    assert response.get_json()["code"] == "api_key_required"


@pytest.mark.parametrize("key", ["nope", "vb_" + "x" * 40, "Bearer"])
def test_unknown_api_key_is_401(app, client, key):
    make_account(app)
    response = client.post(URL, json=batch_body(), headers={"x-request-id": "r", "x-api-key": key})
    assert response.status_code == 401
    assert response.get_json()["code"] == "invalid_api_key"


def test_bearer_authorization_is_accepted(app, client):
    account = make_account(app)
    response = client.post(
        URL,
        json=batch_body(),
        headers={"x-request-id": "r", "Authorization": f"Bearer {account.api_key}"},
    )
    assert response.status_code == 201


def test_revoked_key_is_401(app, client):
    from videobatch.services.accounts import revoke_key

    account = make_account(app)
    with app.extensions["videobatch.db"].transaction() as session:
        revoke_key(session, account.key_id)
    response = post(client, account.api_key)
    assert response.status_code == 401
    assert response.get_json()["code"] == "invalid_api_key"


def test_api_key_is_stored_only_as_hash(app):
    from sqlalchemy import select

    from videobatch.models import ApiKey

    account = make_account(app)
    with app.extensions["videobatch.db"].transaction() as session:
        stored = session.execute(select(ApiKey)).scalar_one()
    assert account.api_key.startswith("vb_") and len(account.api_key) >= 35
    assert account.api_key not in (stored.key_hash, stored.prefix)
    assert stored.prefix in account.api_key


# -- errors ------------------------------------------------------------------------------------


def test_unknown_route_is_404_problem_json(client):
    response = client.get("/api/nope")
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    assert response.get_json()["code"] == "not_found"


def test_wrong_method_is_405_problem_json(app, client):
    account = make_account(app)
    response = client.delete(URL, headers={"x-api-key": account.api_key})
    assert response.status_code == 405
    assert response.get_json()["code"] == "method_not_allowed"
    assert {"GET", "POST"} <= set(response.headers["Allow"].split(", "))


def test_body_over_limit_is_413(app, client):
    account = make_account(app)
    response = client.post(
        URL,
        data=b"{" + b" " * (3 * 1024 * 1024) + b"}",
        content_type="application/json",
        headers={"x-api-key": account.api_key, "x-request-id": "big"},
    )
    assert response.status_code == 413
    assert response.get_json()["code"] == "payload_too_large"


@pytest.mark.parametrize("raw", [b"not json", b"{", b"\xff\xfe", b""])
def test_invalid_json_is_400(app, client, raw):
    account = make_account(app)
    response = client.post(
        URL,
        data=raw,
        content_type="application/json",
        headers={"x-api-key": account.api_key, "x-request-id": "r"},
    )
    assert response.status_code == 400
    assert response.get_json()["code"] == "invalid_json"


def test_unexpected_error_is_500_without_trace(app, client, monkeypatch):
    from videobatch.services import batches

    def explode(*args, **kwargs):
        raise RuntimeError("SELECT secret FROM somewhere")

    monkeypatch.setattr(batches, "create_batch", explode)
    account = make_account(app)
    response = post(client, account.api_key)
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert response.get_json()["code"] == "internal_error"
    assert "SELECT" not in body and "Traceback" not in body and account.api_key not in body
