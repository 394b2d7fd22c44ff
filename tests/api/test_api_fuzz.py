"""Fuzzing the API from its own OpenAPI schema (schemathesis strategies driven by hypothesis):
valid and invalid bodies for /predict and calls to the other documented operations. No input
may produce a 5xx, bodies generated as valid must be scored, bodies generated as invalid must
be refused with 4xx, and every answer must match the documented response schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode


@pytest.fixture(scope="module")
def api_schema(preloaded_app):
    return schemathesis.openapi.from_asgi("/openapi.json", preloaded_app)


def _fuzz(operation, mode: GenerationMode, examples: int, check) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        response = case.call()
        assert response.status_code < 500, (case.body, response.text)
        check(case, response)

    run()


def test_valid_predict_bodies_are_scored(api_schema):
    def check(case, response):
        assert response.status_code == 200, (case.body, response.text)
        assert len(response.json()["scores"]) == len(case.body["rows"])
        case.validate_response(response)

    _fuzz(api_schema["/predict"]["POST"], GenerationMode.POSITIVE, 60, check)


def test_invalid_predict_bodies_are_refused_without_server_errors(api_schema):
    def check(case, response):
        assert 400 <= response.status_code < 500, (case.body, response.text)
        assert response.json()["detail"]

    _fuzz(api_schema["/predict"]["POST"], GenerationMode.NEGATIVE, 150, check)


@pytest.mark.parametrize("path", ["/health", "/version"])
def test_other_operations_match_their_schema(api_schema, path):
    _fuzz(api_schema[path]["GET"], GenerationMode.POSITIVE, 5, lambda case, response: case.validate_response(response))
