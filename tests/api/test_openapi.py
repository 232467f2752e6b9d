"""The API contract: /openapi.json is valid OpenAPI 3.1 and covers every route; /docs is offline."""

from __future__ import annotations

import re

from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from videobatch import errors
from videobatch.openapi import OPERATIONS


def test_document_validates_as_openapi_3_1(app, client):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)


def test_every_api_route_is_documented(app, client):
    document = client.get("/openapi.json").get_json()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert method.lower() in document["paths"].get(path, {}), (method, path)
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert set(OPERATIONS) <= endpoints, "documented endpoints that no longer exist"


def test_security_schemes_cover_both_headers(app, client):
    document = client.get("/openapi.json").get_json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    assert schemes["WorkerSecret"]["name"] == "x-internal-secret"
    create = document["paths"]["/api/enterprise/video-batch"]["post"]
    assert {"ApiKey": []} in create["security"]
    claim = document["paths"]["/api/internal/tasks/claim"]["post"]
    assert {"WorkerSecret": []} in claim["security"]


def test_error_codes_are_listed_per_endpoint(app, client):
    document = client.get("/openapi.json").get_json()
    create = document["paths"]["/api/enterprise/video-batch"]["post"]["responses"]
    assert errors.InsufficientCredits.code in create["402"]["description"]
    assert errors.IdempotencyKeyReused.code in create["422"]["description"]
    assert errors.RequestInProgress.code in create["409"]["description"]
    assert errors.InvalidApiKey.code in create["401"]["description"]
    problem = create["402"]["content"]["application/problem+json"]["schema"]["$ref"]
    assert problem == "#/components/schemas/Problem"
    detail = document["paths"]["/api/enterprise/video-batch/{batch_id}"]["get"]
    assert "not_found" in detail["responses"]["404"]["description"]
    assert detail["parameters"][0]["schema"] == {"type": "string", "format": "uuid"}


def test_request_limits_match_the_service(app, client):
    document = client.get("/openapi.json").get_json()
    create = document["components"]["schemas"]["BatchCreate"]["properties"]
    assert create["items"]["maxItems"] == app.extensions["videobatch.config"].max_items_per_batch
    item = document["components"]["schemas"]["BatchItem"]
    assert item["required"] == ["prompt"]
    assert item["additionalProperties"] is False
    listing = document["paths"]["/api/enterprise/video-batch"]["get"]["parameters"]
    limit = next(parameter for parameter in listing if parameter["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 100)


def test_docs_page_loads_only_local_assets(app, client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources
    for source in sources:
        with client.get(source) as asset:
            assert asset.status_code == 200, source
            assert len(asset.get_data()) > 100, source
    for missing in ("/docs/assets/../../etc/passwd", "/docs/assets/index.html"):
        with client.get(missing) as answer:
            assert answer.status_code == 404
