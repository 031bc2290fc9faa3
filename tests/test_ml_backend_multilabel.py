"""The Label Studio ML backend on a multi-label project, in-process: `/predict` answers with
label sets (the calibrated per-label decisions), the webhook takes sets (the real Label Studio
test is in tests/labelstudio/)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from labelloop import Project
from labelloop.labelers.openai import OpenAILabeler
from labelloop.multilabel import PerLabelCalibrator
from labelloop.server.ml_backend import create_ml_backend_app
from labelloop.store import Annotation, Calibration, Item, Prediction
from labelloop.testing.fake_openai import FakeConfig, keyword_decision, serve_fake_openai
from test_multilabel_project import LABELS, _simulated

CONFIG = """<View>
  <Text name="article" value="$body"/>
  <Choices name="topics" toName="article" choice="multiple">
    <Choice value="business"/><Choice value="sport"/><Choice value="tech"/>
  </Choices>
</View>"""


def task(task_id: int, text: str, key: str | None = None) -> dict:
    data = {"body": text} if key is None else {"body": text, "key": key}
    return {"id": task_id, "data": data, "annotations": [], "predictions": []}


@pytest.fixture
def ml_project(tmp_path, db_url):
    project = Project.create(
        tmp_path / "ml", task="Topics of a news text.", labels=LABELS, db=db_url, multi_label=True
    )
    yield project
    project.close()


@pytest.fixture
def fake():
    # The per-label rule: a label applies when the text names it.
    with serve_fake_openai(FakeConfig(decision_rule=keyword_decision)) as server:
        yield server


def test_setup_takes_a_multiple_choice_question_only(ml_project):
    client = TestClient(create_ml_backend_app(ml_project))
    single = CONFIG.replace('choice="multiple"', 'choice="single"')
    refused = client.post("/setup", json={"schema": single})
    assert refused.status_code == 400 and "multiple" in refused.json()["detail"]
    assert client.post("/setup", json={"schema": CONFIG}).status_code == 200


def test_unseen_tasks_get_label_sets_from_the_labeler_once(ml_project, fake):
    labeler = OpenAILabeler("fake-model", base_url=fake.base_url, concurrency=4)
    client = TestClient(create_ml_backend_app(ml_project, labeler=labeler))
    assert client.post("/setup", json={"schema": CONFIG}).status_code == 200
    texts = ["sport and tech news", "business only", "nothing of the kind", "tech"]
    body = {"tasks": [task(10 + k, t) for k, t in enumerate(texts)], "label_config": CONFIG}
    answer = client.post("/predict", json=body)
    labeler.close()
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    expected = [["sport", "tech"], ["business"], [], ["tech"]]
    rows = {r["id"]: r for r in ml_project.iter_export_rows()}
    for k, (result, labels) in enumerate(zip(results, expected, strict=True)):
        row = rows[f"ls-{10 + k}"]
        assert row["llm_labels"] == labels
        assert result["model_version"].startswith("labelloop:fake-model@")
        assert result["score"] == pytest.approx(row["confidence"])
        if not labels:
            assert result["result"] == []
            continue
        (entry,) = result["result"]
        assert (entry["from_name"], entry["to_name"], entry["type"]) == (
            "topics",
            "article",
            "choices",
        )
        assert entry["value"] == {"choices": labels}
        assert entry["meta"]["probs"] == pytest.approx(row["probs"], abs=1e-4)
        assert all((entry["meta"]["probs"][lab] >= 0.5) == (lab in labels) for lab in LABELS)
    asked = fake.stats.total
    assert asked == len(texts) * len(LABELS)  # one yes/no decision per label and text
    # Asked again, the backend answers from its store.
    again = client.post("/predict", json=body).json()["results"]
    assert again == results and fake.stats.total == asked
    with ml_project.store.session() as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == len(texts)


def test_known_items_are_answered_with_their_calibrated_sets(ml_project):
    _simulated(ml_project)
    ml_project.calibrate(budget=0.5, method="platt")
    client = TestClient(create_ml_backend_app(ml_project, id_key="key"))
    client.post("/setup", json={"schema": CONFIG})
    uids = [f"p{k}" for k in range(12)]
    tasks = [task(100 + k, f"pool {k}", key=uid) for k, uid in enumerate(uids)]
    results = client.post("/predict", json={"tasks": tasks}).json()["results"]
    with ml_project.store.session() as session:
        stored = session.scalars(select(Calibration.calibrator)).one()
        items = {i.uid: i for i in session.scalars(select(Item).where(Item.uid.in_(uids)))}
        predictions = {p.id: p for p in session.scalars(select(Prediction))}
    calibrator = PerLabelCalibrator.from_dict(stored)
    moved = 0
    for uid, result in zip(uids, results, strict=True):
        item = items[uid]
        prediction = predictions[item.prediction_id]
        calibrated = calibrator.transform([[prediction.probs[lab] for lab in LABELS]])[0]
        chosen = [lab for j, lab in enumerate(LABELS) if calibrated[j] >= 0.5]
        assert chosen == item.llm_labels == prediction.calibrated_labels
        moved += chosen != prediction.labels
        assert result["score"] == pytest.approx(item.calibrated_confidence)
        assert result["score"] == pytest.approx(min(max(p, 1 - p) for p in calibrated))
        if chosen:
            (entry,) = result["result"]
            assert entry["value"]["choices"] == chosen
            assert entry["meta"]["probs"] == pytest.approx(
                dict(zip(LABELS, calibrated, strict=True)), abs=1e-4
            )
        else:
            assert result["result"] == []
    assert moved > 0  # calibration changed some sets: the answer is not the raw one


def test_a_new_task_is_calibrated_with_the_calibration_in_force(ml_project, fake):
    labeler = OpenAILabeler("fake-model", base_url=fake.base_url, concurrency=4)
    client = TestClient(create_ml_backend_app(ml_project, labeler=labeler))
    client.post("/setup", json={"schema": CONFIG})
    gold = [
        {"id": f"g{k}", "text": f"{lab} story {k}", "labels": [lab]}
        for k, lab in enumerate(LABELS * 5)
    ]
    ml_project.add_items(gold, label_col="labels", split="gold")
    ml_project.prelabel(labeler)
    ml_project.calibrate(budget=0.5, method="platt")
    result = client.post("/predict", json={"tasks": [task(1, "sport today")]}).json()["results"]
    labeler.close()
    with ml_project.store.session() as session:
        item = session.scalars(select(Item).where(Item.uid == "ls-1")).one()
        prediction = session.get_one(Prediction, item.prediction_id)
    assert prediction.calibrated_confidence is not None  # calibrated as it was stored
    assert result[0]["score"] == pytest.approx(prediction.calibrated_confidence)
    assert result[0]["result"][0]["value"]["choices"] == prediction.calibrated_labels
    assert result[0]["model_version"].endswith("+cal1")


def test_webhook_records_label_sets(ml_project):
    client = TestClient(create_ml_backend_app(ml_project))
    client.post("/setup", json={"schema": CONFIG})
    chosen = [
        {
            "from_name": "topics",
            "to_name": "article",
            "type": "choices",
            "value": {"choices": ["tech", "business"]},
        }
    ]
    event = {
        "action": "ANNOTATION_CREATED",
        "annotation": {"id": 5, "completed_by": 3, "result": chosen, "lead_time": 2.0},
        "task": task(7, "a chip maker's shares"),
        "project": {"id": 1},
    }
    answer = client.post("/webhook", json=event)
    assert answer.status_code == 200, answer.text
    with ml_project.store.session() as session:
        (stored,) = session.scalars(select(Annotation)).all()
    assert stored.labels == ["business", "tech"]  # in the project's order
    assert (stored.label, stored.source) == (None, "labelstudio")
    row = {r["id"]: r for r in ml_project.iter_export_rows()}["ls-7"]
    assert row["state"] == "human_labeled" and sorted(row["labels"]) == ["business", "tech"]


def test_a_refused_update_keeps_the_set_it_would_have_replaced(ml_project):
    client = TestClient(create_ml_backend_app(ml_project))
    client.post("/setup", json={"schema": CONFIG})

    def event(action: str, chosen: list[str]) -> dict:
        result = [{"from_name": "topics", "to_name": "article", "type": "choices"}]
        result[0]["value"] = {"choices": chosen}
        annotation = {"id": 5, "completed_by": 3, "result": result}
        return {"action": action, "annotation": annotation, "task": task(7, "chips")}

    assert client.post("/webhook", json=event("ANNOTATION_CREATED", ["tech"])).status_code == 200
    refused = client.post("/webhook", json=event("ANNOTATION_UPDATED", ["tech", "weather"]))
    assert refused.status_code == 400 and "weather" in refused.json()["detail"]
    with ml_project.store.session() as session:
        answers = session.scalars(select(Annotation)).all()
    assert [(a.labels, a.undone) for a in answers] == [(["tech"], False)]
    row = {r["id"]: r for r in ml_project.iter_export_rows()}["ls-7"]
    assert (row["state"], row["labels"]) == ("human_labeled", ["tech"])
