"""API errors: a class per status code, built from the Status payload, each with its retry policy."""

from __future__ import annotations

import json

import pytest

from storeagent.operator import k8s


def status_body(code: int, reason: str, message: str, retry_after: int | None = None) -> str:
    doc = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
           "message": message}
    if retry_after is not None:
        doc["details"] = {"retryAfterSeconds": retry_after}
    return json.dumps(doc)


@pytest.mark.parametrize(("code", "reason", "cls", "retryable", "delay"), [
    (401, "Unauthorized", k8s.ApiUnauthorizedError, True, 10.0),
    (403, "Forbidden", k8s.ApiForbiddenError, True, 30.0),
    (404, "NotFound", k8s.ApiNotFoundError, True, 10.0),
    (409, "Conflict", k8s.ApiConflictError, True, 1.0),
    (429, "TooManyRequests", k8s.ApiTooManyRequestsError, True, 5.0),
    (500, "InternalError", k8s.ApiServerError, True, 5.0),
    (503, "ServiceUnavailable", k8s.ApiServerError, True, 5.0),
    (422, "Invalid", k8s.ApiInvalidError, False, 0.0),
    (400, "BadRequest", k8s.ApiInvalidError, False, 0.0),
    (413, "RequestEntityTooLarge", k8s.ApiInvalidError, False, 0.0),
])
def test_class_and_policy_by_code(code: int, reason: str, cls: type[k8s.ApiError], retryable: bool,
                                  delay: float) -> None:
    e = k8s.api_error(code, "PATCH", "/api/v1/namespaces/t/configmaps/c", status_body(code, reason, "why"))
    assert type(e) is cls and e.retryable is retryable and e.delay_s == delay
    assert e.reason == reason and e.message == "why" and "HTTP" in str(e) and reason in str(e)


def test_retry_after_from_header_or_details_raises_the_delay_within_bounds() -> None:
    assert k8s.api_error(429, "GET", "/x", status_body(429, "TooManyRequests", "slow down"), "12").delay_s == 12
    assert k8s.api_error(429, "GET", "/x", status_body(429, "TooManyRequests", "m", retry_after=7)).delay_s == 7
    assert k8s.api_error(503, "GET", "/x", "", "86400").delay_s == 300  # a hostile hint cannot park a shop
    assert k8s.api_error(429, "GET", "/x", "", "Wed, 21 Oct 2026 07:28:00 GMT").delay_s == 5


def test_non_status_bodies_keep_their_text() -> None:
    e = k8s.api_error(502, "GET", "/x", "<html>bad gateway</html>")
    assert e.reason == "" and "bad gateway" in e.message and e.retryable


def test_no_response_is_temporary_with_a_short_retry() -> None:
    e = k8s.ApiNoResponseError("PATCH", "/api/v1/x", TimeoutError("Timeout on reading data from socket"))
    assert e.retryable and e.delay_s == 5 and e.reason == "NoResponse" and "Timeout on reading" in e.message
