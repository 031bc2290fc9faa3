"""labelloop's ML backend against a real Label Studio (from PyPI, in its own venv).

Label Studio starts on a free loopback port with a fresh data folder; labelloop's backend runs
under uvicorn on another port, labeling with the fake OpenAI-compatible server (the network
edge). Through Label Studio's REST API the test creates a project, connects the backend, imports
tasks, retrieves predictions, annotates, and checks the answers land in labelloop's store.

Install Label Studio with `scripts/setup-labelstudio.sh`. Without it the test is skipped
locally and fails under CI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from labelloop.testing.server import free_port, serve_app

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("LABELLOOP_LABELSTUDIO_VENV", REPO / ".venv-labelstudio"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TOKEN = "labelloop-test-token-0123456789"
START_TIMEOUT_S = 240.0
CONFIG = """<View>
  <Text name="review" value="$review_text"/>
  <Choices name="sentiment" toName="review" choice="single" showInLine="true">
    <Choice value="positive"/><Choice value="negative"/><Choice value="neutral"/>
  </Choices>
</View>"""
TEXTS = ["truly positive, loved it", "negative: it broke", "a neutral note", "negative again"]


def wait_until(check, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    pytest.fail(f"{what} did not come up within {timeout:.0f} s\n{tail}")


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory) -> Iterator[str]:
    executable = VENV / "bin" / "label-studio"
    if not executable.exists():
        message = f"Label Studio is not installed in {VENV}; run scripts/setup-labelstudio.sh"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("labelstudio")
    port = free_port()
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(folder / "data"),  # fresh: see the recipe's gotcha 1
        "LABEL_STUDIO_USERNAME": "admin@example.com",
        "LABEL_STUDIO_PASSWORD": "admin12345",
        "LABEL_STUDIO_USER_TOKEN": TOKEN,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "ML_BLOCK_LOCAL_IP": "false",
        "SSRF_PROTECTION_ENABLED": "false",
        "LATEST_VERSION_CHECK": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
    }
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    log = folder / "label-studio.log"
    with log.open("wb") as out:
        command = [str(executable), "start", "--no-browser", "--port", str(port)]
        process = subprocess.Popen(
            [*command, "--internal-host", "127.0.0.1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so its workers stop with it
        )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            pytest.fail(f"Label Studio exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{base}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, START_TIMEOUT_S, "Label Studio", log)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def labeled_project(folder: Path) -> Iterator[tuple[object, object]]:
    """A project and a labeler that answers through the fake OpenAI server."""
    from labelloop import Project
    from labelloop.labelers.openai import OpenAILabeler
    from labelloop.testing.fake_openai import serve_fake_openai

    project = Project.create(
        folder, task="Sentiment of a review.", labels=["positive", "negative", "neutral"]
    )
    with serve_fake_openai() as fake:
        labeler = OpenAILabeler("fake-model", base_url=fake.base_url, concurrency=4)
        try:
            yield project, labeler
        finally:
            labeler.close()
            project.close()


@pytest.fixture
def backend(tmp_path) -> Iterator[tuple[str, object]]:
    """labelloop's ML backend alone (open, as `serve --ml-backend-only` without a pair)."""
    from labelloop.server.ml_backend import create_ml_backend_app

    with (
        labeled_project(tmp_path / "proj") as (project, labeler),
        serve_app(create_ml_backend_app(project, labeler=labeler)) as url,
    ):
        yield url, project


@pytest.fixture
def full_server(tmp_path) -> Iterator[tuple[str, object]]:
    """The full review server, whose Label Studio routes take admin or service accounts."""
    from labelloop.server import create_app

    with labeled_project(tmp_path / "proj") as (project, labeler):
        app = create_app(project, retrain_every=0)
        app.state.labeler = labeler
        with serve_app(app) as url:
            yield url, project


def choice_result(label: str) -> list[dict]:
    return [
        {
            "from_name": "sentiment",
            "to_name": "review",
            "type": "choices",
            "value": {"choices": [label]},
        }
    ]


def annotate(ls: httpx.Client, task_id: int, label: str) -> int:
    body = {"result": choice_result(label), "lead_time": 3}
    annotated = ls.post(f"/api/tasks/{task_id}/annotations", json=body)
    assert annotated.status_code == 201, annotated.text
    return annotated.json()["id"]


def test_label_studio_gets_predictions_and_sends_annotations(label_studio, backend) -> None:
    from labelloop.store import Annotation

    backend_url, project = backend
    ls = httpx.Client(
        base_url=label_studio, headers={"Authorization": f"Token {TOKEN}"}, timeout=60
    )
    created = ls.post("/api/projects", json={"title": "labelloop", "label_config": CONFIG})
    assert created.status_code == 201, created.text
    ls_project = created.json()["id"]

    connected = ls.post(
        "/api/ml",
        json={"project": ls_project, "url": backend_url, "title": "labelloop"},
    )
    assert connected.status_code == 201, connected.text
    ml_id = connected.json()["id"]
    assert project.settings["labelstudio"]["label_config"].strip() == CONFIG.strip()

    imported = ls.post(
        f"/api/projects/{ls_project}/import", json=[{"review_text": t} for t in TEXTS]
    )
    assert imported.status_code == 201, imported.text
    tasks = ls.get("/api/tasks", params={"project": ls_project, "page_size": 100}).json()
    tasks = tasks["tasks"] if isinstance(tasks, dict) else tasks
    by_text = {t["data"]["review_text"]: t["id"] for t in tasks}
    assert set(by_text) == set(TEXTS)

    action = ls.post(
        "/api/dm/actions",
        params={"id": "retrieve_tasks_predictions", "project": ls_project},
        json={"selectedItems": {"all": True, "excluded": []}},
    )
    assert action.status_code == 200, action.text

    expected = {TEXTS[0]: "positive", TEXTS[1]: "negative", TEXTS[2]: "neutral"}
    rows = {r["id"]: r for r in project.iter_export_rows()}
    for text, label in expected.items():
        task_id = by_text[text]
        predictions = ls.get("/api/predictions", params={"task": task_id}).json()
        assert len(predictions) == 1, predictions
        (prediction,) = predictions
        assert prediction["model_version"].startswith("labelloop:fake-model@")
        (entry,) = prediction["result"]
        assert entry["from_name"] == "sentiment" and entry["to_name"] == "review"
        assert entry["value"]["choices"] == [label]
        # The score Label Studio stored is labelloop's confidence for that item.
        row = rows[f"ls-{task_id}"]
        assert row["text"] == text and row["llm_label"] == label
        assert prediction["score"] == pytest.approx(row["confidence"])

    # A person corrects the first task in Label Studio: the answer reaches labelloop's store.
    first = by_text[TEXTS[0]]
    annotation_id = annotate(ls, first, "neutral")

    def stored() -> list[Annotation]:
        with project.store.session() as session:
            return list(
                session.scalars(
                    select(Annotation).where(Annotation.external_id == str(annotation_id))
                )
            )

    wait_until(lambda: len(stored()) == 1, 10, "the annotation in labelloop's store")
    (answer,) = stored()
    assert (answer.source, answer.label, answer.action, answer.undone) == (
        "labelstudio",
        "neutral",
        "correct",
        False,
    )
    assert answer.suggested_label == "positive"
    row = {r["id"]: r for r in project.iter_export_rows()}[f"ls-{first}"]
    assert (row["state"], row["label"], row["label_source"]) == (
        "human_labeled",
        "neutral",
        "human",
    )

    # Updating it in Label Studio replaces it; deleting it withdraws it.
    assert ls.patch(
        f"/api/annotations/{annotation_id}", json={"result": choice_result("negative")}
    ).is_success
    wait_until(
        lambda: [a.label for a in stored() if not a.undone] == ["negative"], 10, "the update"
    )
    assert ls.delete(f"/api/annotations/{annotation_id}").is_success
    wait_until(lambda: all(a.undone for a in stored()), 10, "the deletion")
    row = {r["id"]: r for r in project.iter_export_rows()}[f"ls-{first}"]
    assert row["label_source"] != "human"

    # Training asked for in Label Studio reaches the backend's webhook.
    assert ls.post(f"/api/ml/{ml_id}/train", json={}).is_success
    metrics = httpx.get(f"{backend_url}/metrics", timeout=10).json()
    assert metrics["requests"].get("webhook_start_training") == 1
    assert metrics["requests"]["predicted_tasks"] >= len(TEXTS)


def test_label_studio_reaches_the_full_server_with_a_service_account(
    label_studio, full_server
) -> None:
    """What the README tells a team to do: a service account's token as the basic-auth
    password of the ML-backend connection, and as a header of the webhook Label Studio makes."""
    from labelloop import review

    backend_url, project = full_server
    review.add_user(project, "studio", role="service")
    review.add_user(project, "ann", password="ann-password")
    token = review.create_token(project, "studio")
    ls = httpx.Client(
        base_url=label_studio, headers={"Authorization": f"Token {TOKEN}"}, timeout=60
    )
    created = ls.post("/api/projects", json={"title": "full", "label_config": CONFIG})
    assert created.status_code == 201, created.text
    ls_project = created.json()["id"]
    connection = {"project": ls_project, "url": backend_url, "title": "labelloop"}
    basic = {"auth_method": "BASIC_AUTH", "basic_auth_user": "ann"}
    # An annotator's credentials are refused, so Label Studio cannot connect with them.
    annotator = {**connection, **basic, "basic_auth_pass": review.create_token(project, "ann")}
    assert ls.post("/api/ml", json=annotator).status_code == 400
    service = {**connection, **basic, "basic_auth_user": "studio", "basic_auth_pass": token}
    connected = ls.post("/api/ml", json=service)
    assert connected.status_code == 201, connected.text
    assert project.settings["labelstudio"]["label_config"].strip() == CONFIG.strip()
    hooks = ls.get("/api/webhooks", params={"project": ls_project}).json()
    (hook,) = [h for h in hooks if h["url"].startswith(backend_url)]
    patched = ls.patch(
        f"/api/webhooks/{hook['id']}", json={"headers": {"Authorization": f"Bearer {token}"}}
    )
    assert patched.is_success, patched.text

    imported = ls.post(f"/api/projects/{ls_project}/import", json=[{"review_text": TEXTS[1]}])
    assert imported.status_code == 201, imported.text
    (task,) = ls.get("/api/tasks", params={"project": ls_project}).json()["tasks"]
    action = ls.post(
        "/api/dm/actions",
        params={"id": "retrieve_tasks_predictions", "project": ls_project},
        json={"selectedItems": {"all": True, "excluded": []}},
    )
    assert action.status_code == 200, action.text
    (prediction,) = ls.get("/api/predictions", params={"task": task["id"]}).json()
    assert prediction["result"][0]["value"]["choices"] == ["negative"]

    # The person who answers in Label Studio is credited, through the account linked to them.
    me = ls.get("/api/current-user/whoami").json()
    review.add_user(project, "lena", password="lena-password", labelstudio_user=me["id"])
    annotate(ls, task["id"], "neutral")

    def credited() -> list[tuple[str, str]]:
        from labelloop.store import Annotation, Annotator

        with project.store.session() as session:
            rows = session.execute(
                select(Annotator.name, Annotation.label).join(
                    Annotation, Annotation.annotator_id == Annotator.id
                )
            )
            return [tuple(row) for row in rows]

    wait_until(lambda: len(credited()) == 1, 10, "the annotation in labelloop's store")
    assert credited() == [("lena", "neutral")]


def test_label_studio_gets_predictions_for_its_own_tasks_from_serve(label_studio, tmp_path) -> None:
    """A Label Studio user's first hour: a project, three tasks imported, `labelloop serve
    --ml-backend-only` connected, predictions retrieved: one per task, with a label from the
    config, for tasks labelloop had never seen (labeled by `--model` at `--base-url`)."""
    from labelloop import Project
    from labelloop.testing.fake_openai import serve_fake_openai
    from labelloop.testing.server import start_serve

    folder = tmp_path / "proj"
    Project.create(
        folder, task="Sentiment of a review.", labels=["positive", "negative", "neutral"]
    ).close()
    ls = httpx.Client(
        base_url=label_studio, headers={"Authorization": f"Token {TOKEN}"}, timeout=60
    )
    created = ls.post("/api/projects", json={"title": "own tasks", "label_config": CONFIG})
    assert created.status_code == 201, created.text
    ls_project = created.json()["id"]
    texts = TEXTS[:3]
    imported = ls.post(
        f"/api/projects/{ls_project}/import", json=[{"review_text": t} for t in texts]
    )
    assert imported.status_code == 201, imported.text

    port = free_port()
    with serve_fake_openai() as fake:
        model = ["--model", "fake-model", "--base-url", fake.base_url]
        server = start_serve(folder, port, "--ml-backend-only", *model)
        try:
            backend_url = f"http://127.0.0.1:{port}"
            connected = ls.post(
                "/api/ml", json={"project": ls_project, "url": backend_url, "title": "labelloop"}
            )
            assert connected.status_code == 201, connected.text
            action = ls.post(
                "/api/dm/actions",
                params={"id": "retrieve_tasks_predictions", "project": ls_project},
                json={"selectedItems": {"all": True, "excluded": []}},
            )
            assert action.status_code == 200, action.text
            asked = fake.stats.total
            tasks = ls.get("/api/tasks", params={"project": ls_project}).json()["tasks"]
            assert len(tasks) == 3
            found = {}
            for t in tasks:
                (prediction,) = ls.get("/api/predictions", params={"task": t["id"]}).json()
                (entry,) = prediction["result"]
                assert (entry["from_name"], entry["to_name"]) == ("sentiment", "review")
                found[t["data"]["review_text"]] = entry["value"]["choices"]
                assert 0 < prediction["score"] <= 1
                assert prediction["model_version"].startswith("labelloop:fake-model@")
            # The fake endpoint's rule: the label named in the text.
            assert found == {texts[0]: ["positive"], texts[1]: ["negative"], texts[2]: ["neutral"]}
            assert asked == 3
            # Asked again (a new task view, say), the backend answers from its store.
            again = httpx.post(
                f"{backend_url}/predict",
                json={"tasks": tasks, "label_config": CONFIG},
                timeout=30,
            )
            assert again.status_code == 200, again.text
            assert [r["result"][0]["value"]["choices"] for r in again.json()["results"]] == [
                found[t["data"]["review_text"]] for t in tasks
            ]
            assert fake.stats.total == asked
        finally:
            server.terminate()
            server.wait(timeout=30)
    with Project.open(folder) as project:
        rows = {r["id"]: r for r in project.iter_export_rows()}
    assert {rows[f"ls-{t['id']}"]["llm_label"] for t in tasks} == {
        "positive",
        "negative",
        "neutral",
    }


ML_CONFIG = """<View>
  <Text name="article" value="$body"/>
  <Choices name="topics" toName="article" choice="multiple" showInLine="true">
    <Choice value="business"/><Choice value="sport"/><Choice value="tech"/>
  </Choices>
</View>"""
ML_TEXTS = ["sport and tech news", "business only", "nothing of the kind"]


def test_label_studio_gets_label_sets_from_a_multi_label_project(label_studio, tmp_path) -> None:
    """A multi-label project behind Label Studio: each task's prediction is the set of labels
    the per-label decisions chose, with each label's probability in the result's meta; a
    person's set made in Label Studio reaches labelloop as a set."""
    from labelloop import Project
    from labelloop.labelers.openai import OpenAILabeler
    from labelloop.server.ml_backend import create_ml_backend_app
    from labelloop.store import Annotation
    from labelloop.testing.fake_openai import FakeConfig, keyword_decision, serve_fake_openai

    project = Project.create(
        tmp_path / "ml", task="Topics.", labels=["business", "sport", "tech"], multi_label=True
    )
    with serve_fake_openai(FakeConfig(decision_rule=keyword_decision)) as fake:
        labeler = OpenAILabeler("fake-model", base_url=fake.base_url, concurrency=4)
        app = create_ml_backend_app(project, labeler=labeler)
        with serve_app(app) as backend_url:
            ls = httpx.Client(
                base_url=label_studio, headers={"Authorization": f"Token {TOKEN}"}, timeout=60
            )
            created = ls.post("/api/projects", json={"title": "topics", "label_config": ML_CONFIG})
            assert created.status_code == 201, created.text
            ls_project = created.json()["id"]
            connected = ls.post(
                "/api/ml", json={"project": ls_project, "url": backend_url, "title": "labelloop"}
            )
            assert connected.status_code == 201, connected.text
            imported = ls.post(
                f"/api/projects/{ls_project}/import", json=[{"body": t} for t in ML_TEXTS]
            )
            assert imported.status_code == 201, imported.text
            action = ls.post(
                "/api/dm/actions",
                params={"id": "retrieve_tasks_predictions", "project": ls_project},
                json={"selectedItems": {"all": True, "excluded": []}},
            )
            assert action.status_code == 200, action.text
            tasks = ls.get("/api/tasks", params={"project": ls_project}).json()["tasks"]
            rows = {r["id"]: r for r in project.iter_export_rows()}
            expected = {ML_TEXTS[0]: ["sport", "tech"], ML_TEXTS[1]: ["business"], ML_TEXTS[2]: []}
            for t in tasks:
                (prediction,) = ls.get("/api/predictions", params={"task": t["id"]}).json()
                row = rows[f"ls-{t['id']}"]
                labels = expected[t["data"]["body"]]
                assert row["llm_labels"] == labels
                assert prediction["score"] == pytest.approx(row["confidence"])
                assert prediction["model_version"].startswith("labelloop:fake-model@")
                if not labels:
                    assert prediction["result"] == []
                    continue
                (entry,) = prediction["result"]
                assert (entry["from_name"], entry["to_name"]) == ("topics", "article")
                assert entry["value"]["choices"] == labels
                assert entry["meta"]["probs"] == pytest.approx(row["probs"], abs=1e-4)

            first = next(t["id"] for t in tasks if t["data"]["body"] == ML_TEXTS[0])
            chosen = [
                {
                    "from_name": "topics",
                    "to_name": "article",
                    "type": "choices",
                    "value": {"choices": ["business", "sport"]},
                }
            ]
            annotated = ls.post(f"/api/tasks/{first}/annotations", json={"result": chosen})
            assert annotated.status_code == 201, annotated.text

            def stored() -> list[list[str] | None]:
                with project.store.session() as session:
                    return list(session.scalars(select(Annotation.labels)))

            wait_until(lambda: len(stored()) == 1, 10, "the annotation in labelloop's store")
            assert stored() == [["business", "sport"]]
        labeler.close()
    row = {r["id"]: r for r in project.iter_export_rows()}[f"ls-{first}"]
    project.close()
    assert row["state"] == "human_labeled" and row["labels"] == ["business", "sport"]
