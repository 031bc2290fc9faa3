"""A bounded schemathesis run against the live server's /openapi.json: whatever an annotator or an
admin sends, valid by the schema or not, the answer is never a 5xx."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from labelloop import review
from labelloop.server import create_app
from labelloop.testing.server import serve_app
from test_review_service import seed

#: Cases per operation, generation mode and account: the whole run stays within a minute or
#: so a store on a busy laptop. Derandomized, so a failure found once is found again.
EXAMPLES = 8
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def served(make_project, fast_password_hashing):
    """A fresh project with items in every state, served live; yields (base URL, tokens)."""
    project = make_project()
    seed(project, 6, n_confident=4, n_gold=3)
    tokens = {}
    for name, role in (("admin", "admin"), ("ann", "annotator")):
        review.add_user(project, name, role=role, password=f"{name}-password")
        tokens[name] = review.create_token(project, name)
    with serve_app(create_app(project, retrain_every=0)) as base:
        yield base, tokens


def server_errors(operation, mode: GenerationMode, base: str, auth: dict) -> dict[str, str]:
    """The 5xx answers to generated requests of one operation: reply status -> curl command."""
    found: dict[str, str] = {}

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case) -> None:
        response = case.call(base_url=base, headers=auth, timeout=30)
        if response.status_code >= 500:
            found.setdefault(str(response.status_code), case.as_curl_command(headers=auth))

    try:
        fuzz()
    except Unsatisfiable:  # negative mode, and nothing to get wrong (no parameters, no body)
        assert mode is GenerationMode.NEGATIVE
    return found


def test_no_request_gets_a_server_error(served) -> None:
    base, tokens = served
    headers = {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}
    spec = httpx.get(f"{base}/openapi.json", headers=headers["admin"], timeout=30).json()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20  # the REST API and the Label Studio routes
    failures = {
        f"{operation.label} ({mode.value}, {who}) {status}": curl
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        for who, auth in headers.items()
        for status, curl in server_errors(operation, mode, base, auth).items()
    }
    assert not failures, "\n".join(f"{what}\n    {curl}" for what, curl in failures.items())
