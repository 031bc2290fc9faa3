"""The Label Studio ML-backend contract, in-process (the real Label Studio test is in
tests/labelstudio/)."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from labelloop.errors import InputError
from labelloop.labelers.openai import OpenAILabeler
from labelloop.server.ml_backend import create_ml_backend_app
from labelloop.store import Annotation, Item, Prediction
from labelloop.testing.fake_openai import serve_fake_openai

CONFIG = """<View>
  <Header value="Review"/>
  <Text name="review" value="$review_text"/>
  <Choices name="sentiment" toName="review" choice="single">
    <Choice value="positive"/><Choice value="negative"/><Choice value="neutral"/>
  </Choices>
</View>"""


def task(task_id: int, text: str) -> dict:
    return {"id": task_id, "data": {"review_text": text}, "annotations": [], "predictions": []}


def choice(label: str) -> list[dict]:
    return [
        {
            "from_name": "sentiment",
            "to_name": "review",
            "type": "choices",
            "value": {"choices": [label]},
        }
    ]


def event(action: str, annotation_id: int, task_id: int, text: str, label: str | None) -> dict:
    return {
        "action": action,
        "annotation": {
            "id": annotation_id,
            "completed_by": 7,
            "result": choice(label) if label else [],
            "was_cancelled": label is None,
            "lead_time": 4.25,
        },
        "task": task(task_id, text),
        "project": {"id": 1},
    }


@pytest.fixture
def project(make_project):
    return make_project()


@pytest.fixture
def fake_labeler():
    with serve_fake_openai() as server:
        labeler = OpenAILabeler("fake-model", base_url=server.base_url, concurrency=4)
        yield labeler
        labeler.close()


def client_for(project, **options) -> TestClient:
    return TestClient(create_ml_backend_app(project, **options))


def test_setup_stores_the_label_config_and_names_the_model(project):
    client = client_for(project)
    answer = client.post("/setup", json={"project": "3.1700000000", "schema": CONFIG})
    assert answer.status_code == 200
    assert answer.json()["model_version"].startswith("labelloop")
    assert project.settings["labelstudio"]["label_config"] == CONFIG
    bad = client.post("/setup", json={"schema": "<View><Text name='t' value='$t'/></View>"})
    assert bad.status_code == 400 and "Choices" in bad.json()["detail"]
    broken = client.post("/setup", json={"schema": "<View><Choices"})
    assert broken.status_code == 400


def test_predict_adds_unseen_tasks_and_labels_them_in_order(project, fake_labeler):
    client = client_for(project, labeler=fake_labeler)
    client.post("/setup", json={"schema": CONFIG})
    texts = ["a negative review", "so positive!", "neutral, I guess", "a negative end"]
    body = {"tasks": [task(100 + i, t) for i, t in enumerate(texts)], "label_config": CONFIG}
    answer = client.post("/predict", json=body)
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert len(results) == len(texts)
    # The fake labeler's rule: the label named in the text.
    expected = ["negative", "positive", "neutral", "negative"]
    for result, label in zip(results, expected, strict=True):
        (entry,) = result["result"]
        assert (entry["from_name"], entry["to_name"], entry["type"]) == (
            "sentiment",
            "review",
            "choices",
        )
        assert entry["value"] == {"choices": [label]}
        assert 0.0 < result["score"] <= 1.0 and entry["score"] == result["score"]
        assert result["model_version"].startswith("labelloop:fake-model@")
    rows = {r["id"]: r for r in project.iter_export_rows()}
    assert set(rows) == {"ls-100", "ls-101", "ls-102", "ls-103"}
    assert rows["ls-101"]["text"] == "so positive!" and rows["ls-101"]["llm_label"] == "positive"
    # Asking again labels nothing twice.
    with project.store.session() as session:
        before = len(session.scalars(select(Prediction.id)).all())
    assert client.post("/predict", json=body).json()["results"] == results
    with project.store.session() as session:
        assert len(session.scalars(select(Prediction.id)).all()) == before


def test_predict_reports_the_calibrated_confidence_of_existing_predictions(project):
    from labelloop.labelers.base import LabelResult

    project.add_items([{"id": "a", "text": "first"}, {"id": "b", "text": "second"}], id_col="id")
    item = project.item_id("a")
    project.save_predictions("m", "v", [(item, LabelResult("neutral", None, 0.62))])
    with project.store.session() as session:
        session.execute(update(Prediction).values(calibrated_confidence=0.41))
    project.set_active_predictor("m", "v")
    client = client_for(project, id_key="key")
    client.post("/setup", json={"schema": CONFIG})
    tasks = [
        {"id": 1, "data": {"review_text": "first", "key": "a"}},
        {"id": 2, "data": {"review_text": "second", "key": "b"}},
    ]
    results = client.post("/predict", json={"tasks": tasks}).json()["results"]
    assert results[0]["score"] == pytest.approx(0.41)
    assert results[0]["result"][0]["score"] == pytest.approx(0.41)
    assert results[0]["result"][0]["value"]["choices"] == ["neutral"]
    assert results[1]["result"] == []  # no prediction and no labeler: nothing to suggest


def test_webhook_records_updates_and_withdraws_human_annotations(project):
    client = client_for(project)
    client.post("/setup", json={"schema": CONFIG})
    created = client.post("/webhook", json=event("ANNOTATION_CREATED", 11, 5, "meh", "neutral"))
    assert created.status_code == 200, created.text
    rows = {r["id"]: r for r in project.iter_export_rows()}
    assert rows["ls-5"]["state"] == "human_labeled" and rows["ls-5"]["label"] == "neutral"
    client.post("/webhook", json=event("ANNOTATION_UPDATED", 11, 5, "meh", "negative"))
    with project.store.session() as session:
        answers = session.scalars(select(Annotation).order_by(Annotation.id)).all()
    assert [(a.label, a.undone, a.source, a.external_id) for a in answers] == [
        ("neutral", True, "labelstudio", "11"),
        ("negative", False, "labelstudio", "11"),
    ]
    assert answers[1].time_spent_s == pytest.approx(4.25)
    assert {r["id"]: r["label"] for r in project.iter_export_rows()}["ls-5"] == "negative"
    deleted = {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 11}], "project": {}}
    assert client.post("/webhook", json=deleted).json()["undone"] == 1
    row = {r["id"]: r for r in project.iter_export_rows()}["ls-5"]
    assert row["label"] is None and row["state"] != "human_labeled"
    skipped = client.post("/webhook", json=event("ANNOTATION_CREATED", 12, 6, "hm", None))
    assert skipped.json()["state"] != "human_labeled"


def test_webhook_rejects_labels_outside_the_label_set(project):
    client = client_for(project)
    client.post("/setup", json={"schema": CONFIG})
    answer = client.post("/webhook", json=event("ANNOTATION_CREATED", 1, 1, "x", "furious"))
    assert answer.status_code == 400 and "furious" in answer.json()["detail"]
    assert list(project.iter_export_rows()) == [] or all(
        r["label"] is None for r in project.iter_export_rows()
    )


def test_a_refused_update_keeps_the_answer_it_would_have_replaced(project):
    client = client_for(project)
    client.post("/setup", json={"schema": CONFIG})
    client.post("/webhook", json=event("ANNOTATION_CREATED", 11, 5, "meh", "neutral"))
    refused = client.post("/webhook", json=event("ANNOTATION_UPDATED", 11, 5, "meh", "furious"))
    assert refused.status_code == 400 and "furious" in refused.json()["detail"]
    with project.store.session() as session:
        answers = session.scalars(select(Annotation)).all()
    assert [(a.label, a.undone) for a in answers] == [("neutral", False)]
    row = {r["id"]: r for r in project.iter_export_rows()}["ls-5"]
    assert (row["state"], row["label"]) == ("human_labeled", "neutral")


def test_a_bulk_event_with_one_refused_answer_stores_none(project):
    client = client_for(project)
    client.post("/setup", json={"schema": CONFIG})
    good, bad = (
        event("ANNOTATION_CREATED", n, n, f"t{n}", label)
        for n, label in ((1, "neutral"), (2, "furious"))
    )
    bulk = {
        "action": "ANNOTATIONS_CREATED",
        "annotation": [good["annotation"], bad["annotation"]],
        "task": [good["task"], bad["task"]],
    }
    refused = client.post("/webhook", json=bulk)
    assert refused.status_code == 400 and "furious" in refused.json()["detail"]
    with project.store.session() as session:
        assert session.scalars(select(Annotation)).all() == []


def test_webhook_answers_a_result_of_the_wrong_shape_with_a_bad_request(project):
    client = TestClient(create_ml_backend_app(project), raise_server_exceptions=False)
    client.post("/setup", json={"schema": CONFIG})
    sent = event("ANNOTATION_CREATED", 1, 1, "x", "neutral")
    sent["annotation"]["result"][0]["value"] = "neutral"  # not {"choices": [...]}
    answer = client.post("/webhook", json=sent)
    assert answer.status_code == 400 and "value.choices" in answer.json()["detail"]


def test_training_runs_in_the_background_and_metrics_count_requests(project):
    client = client_for(project)
    started = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1}})
    assert started.status_code == 200
    metrics = client.get("/metrics").json()
    # Without trusted labels the student cannot learn yet: reported, not raised; with no
    # calibration chosen so far there is nothing to refit either.
    assert metrics["last_training"]["learn"].startswith("not ready")
    assert "calibrate" not in metrics["last_training"]
    assert metrics["requests"]["webhook_start_training"] == 1
    assert client.get("/versions").json()["versions"][0].startswith("labelloop")
    unknown = client.post("/webhook", json={"action": "PROJECT_UPDATED"})
    assert unknown.json()["ignored"] is True


def test_basic_auth_guards_everything_but_health(project):
    client = client_for(project, basic_auth=("ls", "s3cret"))
    assert client.get("/health").json()["status"] == "UP"
    assert client.post("/setup", json={}).status_code == 401
    wrong = base64.b64encode(b"ls:nope").decode()
    assert (
        client.post("/setup", json={}, headers={"Authorization": f"Basic {wrong}"}).status_code
        == 401
    )
    right = base64.b64encode(b"ls:s3cret").decode()
    headers = {"Authorization": f"Basic {right}"}
    assert client.post("/setup", json={}, headers=headers).status_code == 200
    assert client.get("/metrics", headers=headers).status_code == 200


def test_retraining_asked_for_during_a_run_waits_so_it_takes_a_bounded_share(monkeypatch):
    from labelloop.server import ml_backend

    clock = {"now": 100.0}
    slept: list[float] = []
    runs: list[float] = []
    runtime = ml_backend._Runtime()

    def retrain(project):
        runs.append(clock["now"])
        clock["now"] += 3.0  # a run takes 3 s
        if len(runs) == 1:
            runtime.pending = True  # new answers arrive while it runs
        return {"run": len(runs)}

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock["now"] += seconds

    monkeypatch.setattr(ml_backend.exchange, "retrain", retrain)
    monkeypatch.setattr(ml_backend.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(ml_backend.time, "sleep", sleep)
    ml_backend.retrain_in_background(object(), runtime)
    assert len(runs) == 2 and runtime.counts["trainings"] == 2
    share = ml_backend.MAX_TRAINING_SHARE
    assert slept == [pytest.approx(3.0 * (1 / share - 1))]  # one wait, between the two runs
    assert runs[1] - runs[0] == pytest.approx(3.0 / share)
    assert runtime.last_training == {"run": 2} and not runtime.pending


def test_setup_refuses_a_label_config_whose_choices_are_not_the_projects_labels(project):
    client = client_for(project)
    assert client.post("/setup", json={"schema": CONFIG}).status_code == 200
    other = CONFIG.replace('<Choice value="neutral"/>', '<Choice value="mixed"/>')
    fewer = CONFIG.replace('<Choice value="neutral"/>', "")
    for schema in (other, fewer, CONFIG.replace("</Choices>", '<Choice value="x"/></Choices>')):
        answer = client.post("/setup", json={"schema": schema, "project": "2"})
        assert answer.status_code == 400, answer.text
        assert "labels" in answer.json()["detail"]
    assert "'neutral'" in client.post("/setup", json={"schema": other}).json()["detail"]
    assert project.settings["labelstudio"]["label_config"] == CONFIG  # left as it was
    shuffled = CONFIG.replace('"positive"', '"tmp"').replace('"neutral"', '"positive"')
    shuffled = shuffled.replace('"tmp"', '"neutral"')
    assert client.post("/setup", json={"schema": shuffled}).status_code == 200


def answers_by_annotator(project) -> list[tuple[str, str, str]]:
    from labelloop.store import Annotator

    with project.store.session() as session:
        rows = session.execute(
            select(Annotator.name, Annotation.external_id, Annotation.label)
            .join(Annotator, Annotator.id == Annotation.annotator_id)
            .where(Annotation.undone.is_(False))
            .order_by(Annotation.id)
        ).all()
    return [tuple(r) for r in rows]


def test_webhook_credits_the_label_studio_user_never_a_name_in_the_payload(project):
    from labelloop import review

    review.add_user(project, "admin", role="admin", password="admin-password")
    client = client_for(project)
    client.post("/setup", json={"schema": CONFIG})
    forged = event("ANNOTATION_CREATED", 21, 1, "good", "positive")
    # Provenance under labelloop's key names an admin and another source: not believed.
    forged["annotation"]["labelloop"] = {
        "action": "accept",
        "annotator": "admin",
        "label": "negative",
        "source": "review",
        "external_id": "999",
    }
    assert client.post("/webhook", json=forged).status_code == 200
    assert answers_by_annotator(project) == [("labelstudio:7", "21", "positive")]
    # A labelloop account linked to Label Studio user 9 gets that user's answers.
    review.add_user(project, "alice", password="alice-password", labelstudio_user=9)
    as_object = event("ANNOTATION_CREATED", 22, 2, "bad", "negative")
    as_object["annotation"]["completed_by"] = {"id": 9, "email": "admin"}
    assert client.post("/webhook", json=as_object).status_code == 200
    assert answers_by_annotator(project) == [
        ("labelstudio:7", "21", "positive"),
        ("alice", "22", "negative"),
    ]
    board = {a["name"] for a in review.dashboard(project).to_dict()["annotators"]}
    assert board == {"labelstudio:7", "alice"}
    for bad in ("admin", True, -1, 2**40, 1.5):
        wrong = event("ANNOTATION_CREATED", 23, 3, "meh", "neutral")
        wrong["annotation"]["completed_by"] = bad
        answer = client.post("/webhook", json=wrong)
        assert answer.status_code == 400 and "completed_by" in answer.json()["detail"], bad
    assert len(answers_by_annotator(project)) == 2


def test_delete_events_withdraw_only_answers_that_came_from_label_studio(project):
    client = client_for(project)
    client.post("/setup", json={"schema": CONFIG})
    project.add_items([{"id": "own", "text": "answered in labelloop"}], id_col="id")
    mine = project.annotate(
        "own", action="label", label="neutral", annotator="ann", external_id="31"
    )
    client.post("/webhook", json=event("ANNOTATION_CREATED", 31, 4, "in studio", "positive"))
    ids = [{"id": 31}, {"id": mine.annotation_id}, {"id": "31"}]
    deleted = client.post("/webhook", json={"action": "ANNOTATIONS_DELETED", "annotations": ids})
    assert deleted.json()["undone"] == 1
    assert answers_by_annotator(project) == [("ann", "31", "neutral")]


# ----------------------------------------------------------------- tasks never seen before
@pytest.fixture
def fake():
    """The fake endpoint (to count what it was asked) and a labeler that calls it."""
    with serve_fake_openai() as server:
        labeler = OpenAILabeler("fake-model", base_url=server.base_url, concurrency=4)
        yield server, labeler
        labeler.close()


def predict(client: TestClient, texts: list[str], first_id: int = 100) -> list[dict]:
    body = {"tasks": [task(first_id + i, t) for i, t in enumerate(texts)]}
    answer = client.post("/predict", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]


def labels_of(results: list[dict]) -> list[str | None]:
    return [r["result"][0]["value"]["choices"][0] if r["result"] else None for r in results]


def test_unseen_tasks_are_scored_with_the_projects_calibration_for_the_labeler(project, fake):
    """`score` of a task labeled on the spot is the calibrated confidence, as for items
    pre-labeled before: the labeler is right on 60% of gold, so ~0.6, not its raw 0.9."""
    server, labeler = fake
    gold = [
        {"id": f"g{i}", "text": f"gold review {i} says {['positive', 'negative'][i % 2]}"}
        for i in range(60)
    ]
    for i, row in enumerate(gold):  # 40% of the gold labels disagree with the text's keyword
        row["label"] = ["positive", "negative"][(i % 2) ^ (i % 5 < 2)]
    project.add_items(gold, id_col="id", split="gold")
    project.prelabel(labeler)
    project.calibrate(method="isotonic", budget=0.5)
    client = client_for(project, labeler=labeler)
    client.post("/setup", json={"schema": CONFIG})
    asked = server.stats.total
    results = predict(client, ["plainly positive", "quite negative", "a neutral one"])
    assert server.stats.total == asked + 3
    assert labels_of(results) == ["positive", "negative", "neutral"]
    with project.store.session() as session:
        stored = {
            uid: (calibrated, raw)
            for uid, calibrated, raw in session.execute(
                select(Item.uid, Prediction.calibrated_confidence, Prediction.confidence)
                .join(Item, Item.id == Prediction.item_id)
                .where(Prediction.model == "fake-model")
            )
        }
    for number, result in enumerate(results):
        calibrated, raw = stored[f"ls-{100 + number}"]
        assert calibrated is not None
        assert result["score"] == pytest.approx(calibrated)
        assert result["score"] != pytest.approx(raw)
    assert all(0.4 < r["score"] < 0.8 for r in results)
    assert all("+cal" in r["model_version"] for r in results)


def test_a_second_request_calls_no_labeler(project, fake):
    server, labeler = fake
    client = client_for(project, labeler=labeler)
    client.post("/setup", json={"schema": CONFIG})
    texts = ["one positive", "two negative", "three neutral"]
    first = predict(client, texts)
    asked = server.stats.total
    assert asked == 3
    assert predict(client, texts) == first
    assert predict(client, texts[1:], first_id=101) == first[1:]
    assert server.stats.total == asked


def test_unseen_tasks_get_the_labelers_answer_when_another_predictor_is_active(project, fake):
    """After `learn` (or a pre-labeling run with another model) the active predictor has no
    answer for a task Label Studio just sent: the backend's labeler answers it, once."""
    from labelloop.labelers.base import LabelResult

    server, labeler = fake
    project.add_items([{"id": "old", "text": "an older item"}], id_col="id")
    project.save_predictions(
        "other", "v", [(project.item_id("old"), LabelResult("neutral", None, 0.7))]
    )
    project.set_active_predictor("other", "v")
    client = client_for(project, labeler=labeler)
    client.post("/setup", json={"schema": CONFIG})
    texts = ["really positive", "rather negative"]
    results = predict(client, texts)
    assert labels_of(results) == ["positive", "negative"]
    assert predict(client, texts) == results
    assert server.stats.total == 2
    assert project.active_predictor() == ("other", "v")


def test_predict_labels_at_most_the_cap_per_request(project, fake):
    """A request with more unseen tasks than the cap: the first ones are labeled (in one
    batch) and the answer is the first task's alone, which is how Label Studio's own code
    decides to ask task by task; those requests are then bounded too."""
    server, labeler = fake
    client = client_for(project, labeler=labeler, max_predict_tasks=2)
    client.post("/setup", json={"schema": CONFIG})
    texts = ["a positive", "b negative", "c neutral", "d positive", "e negative"]
    assert labels_of(predict(client, texts)) == ["positive"]
    assert server.stats.total == 2
    # Every task became an item, labeled or not.
    assert {r["id"] for r in project.iter_export_rows()} == {f"ls-{100 + i}" for i in range(5)}
    # Label Studio's retry, one task a request: the first two are stored, the others labeled.
    one_by_one = [predict(client, [text], first_id=100 + i)[0] for i, text in enumerate(texts)]
    assert labels_of(one_by_one) == ["positive", "negative", "neutral", "positive", "negative"]
    assert server.stats.total == 5
    assert predict(client, texts) == one_by_one  # all stored: one batch, nothing to label
    assert server.stats.total == 5


def test_the_cap_on_tasks_labeled_per_request_is_at_least_one(project):
    with pytest.raises(InputError, match="at least 1"):
        create_ml_backend_app(project, max_predict_tasks=0)


def test_serve_labels_unseen_tasks_with_its_model_option(cli, project, monkeypatch, fake):
    """`labelloop serve [--ml-backend-only] --model M --base-url URL` gives both servers a
    labeler for tasks without a prediction; `--model none` gives none."""
    import labelloop.server

    server, _ = fake
    seen: dict[str, list] = {}

    def fake_run(app, **kw) -> None:
        with TestClient(app) as client:
            auth = {"Authorization": f"Bearer {review.create_token(project, 'studio')}"}
            client.post("/setup", json={"schema": CONFIG}, headers=auth)
            tasks = [
                task(300 + len(seen) * 10 + i, t)
                for i, t in enumerate(["x positive", "y negative", "z neutral"])
            ]
            answer = client.post("/predict", json={"tasks": tasks}, headers=auth)
            seen[kw["port"]] = labels_of(answer.json()["results"])

    from labelloop import review

    review.add_user(project, "studio", role="service")
    monkeypatch.setattr(labelloop.server, "run", fake_run)
    remote = ["--model", "fake-model", "--base-url", server.base_url]
    assert (
        cli("serve", "--project", project.path, "--port", 1, *remote, "--max-predict-tasks", 2) == 0
    )
    assert cli("serve", "--project", project.path, "--port", 2, "--ml-backend-only", *remote) == 0
    assert cli("serve", "--project", project.path, "--port", 3, "--model", "none") == 0
    assert seen == {
        1: ["positive"],  # three tasks over a cap of two: the first task's alone
        2: ["positive", "negative", "neutral"],
        3: [None, None, None],
    }


def test_every_webhook_reply_keeps_its_keys_in_order(project):
    """What Label Studio is sent back, per kind of event, key by key."""
    client = client_for(project)
    client.post("/setup", json={"schema": CONFIG})
    created = client.post("/webhook", json=event("ANNOTATION_CREATED", 21, 8, "so-so", "neutral"))
    answer = ["annotation_id", "item", "state", "label"]
    assert list(created.json()) == ["status", "action", "replaced", *answer]
    assert created.json()["replaced"] == 0 and created.json()["item"] == "ls-8"
    updated = client.post("/webhook", json=event("ANNOTATION_UPDATED", 21, 8, "so-so", "positive"))
    assert list(updated.json()) == ["status", "action", "replaced", *answer]
    assert (updated.json()["replaced"], updated.json()["label"]) == (1, "positive")
    deleted = {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 21}], "project": {}}
    assert client.post("/webhook", json=deleted).json() == {
        "status": "ok",
        "action": "ANNOTATIONS_DELETED",
        "undone": 1,
    }
    started = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1}})
    assert started.json() == {"status": "ok", "action": "START_TRAINING"}
    assert client.post("/webhook", json={"action": "PROJECT_UPDATED"}).json() == {
        "status": "ok",
        "action": "PROJECT_UPDATED",
        "ignored": True,
    }
    assert list(client.get("/metrics").json()["last_training"]) == ["learn"]
