"""kopf's retry policy comes from the API error's class (temporary with its delay, or permanent)."""

from __future__ import annotations

import kopf
import pytest

from storeagent.operator import children, handlers, k8s


@pytest.mark.parametrize(("code", "temporary", "delay"), [
    (401, True, 10.0), (403, True, 30.0), (404, True, 10.0), (409, True, 1.0), (429, True, 5.0),
    (500, True, 5.0), (503, True, 5.0), (400, False, None), (422, False, None), (413, False, None),
])
def test_kopf_error_by_class(code: int, temporary: bool, delay: float | None) -> None:
    results: list[str] = []
    err = k8s.api_error(code, "PATCH", "/x", '{"kind":"Status","reason":"R","message":"m"}')
    for e in (err, children.ApplyFailed("Service", "t", "s", err)):
        out = handlers._kopf_error(e, results.append)
        if temporary:
            assert isinstance(out, kopf.TemporaryError) and out.delay == delay
        else:
            assert isinstance(out, kopf.PermanentError)
    assert results == ["retry" if temporary else "error"] * 2
