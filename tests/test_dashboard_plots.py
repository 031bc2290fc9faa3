"""The dashboard's plots show the calibration in force, dated, and say whose accuracy it shows."""

from __future__ import annotations

from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from labelloop import review
from labelloop.server import create_app
from labelloop.server.auth import SESSION_COOKIE
from labelloop.workflows.calibrate import PLOTS, active_calibration, plots_record
from test_calibrate_workflow import overconfident_project


def dashboard_html(project, monkeypatch) -> str:
    monkeypatch.setattr(
        review.accounts,
        "PASSWORD_HASHER",
        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    if "admin" not in {u.name for u in review.list_users(project)}:
        review.add_user(project, "admin", role="admin", password="admin-password")
    token = review.create_token(project, "admin")
    cookie, _ = review.create_session(project, review.principal_for_token(project, token))
    with TestClient(create_app(project)) as client:
        client.cookies.set(SESSION_COOKIE, cookie)
        page = client.get("/dashboard")
    assert page.status_code == 200
    return page.text


def test_plots_are_redrawn_when_the_calibration_changes(make_project, monkeypatch):
    project = overconfident_project(make_project)
    folder = project.path / "plots"
    first = project.calibrate(budget=0.5, plots_dir=folder)
    drawn = plots_record(folder)
    assert drawn["threshold"] == first.threshold and drawn["n_gold"] == 120
    before = (folder / PLOTS["review_rate"]).read_bytes()

    # A recalibration that draws nothing (as `learn` and retraining in the server do).
    second = project.calibrate(budget=0.1)
    assert second.threshold != first.threshold
    assert plots_record(folder)["threshold"] == first.threshold  # stale until looked at

    board = project.dashboard().to_dict()
    shown = board["calibration_plots"]
    calibration = active_calibration(project, "m", "v1")
    assert shown["calibration_id"] == calibration.id and shown["current"]
    assert shown["threshold"] == second.threshold == board["stats"]["threshold"]
    assert shown["calibrated_at"].startswith(f"{calibration.created_at:%Y-%m-%dT%H:%M}")
    assert (folder / PLOTS["review_rate"]).read_bytes() != before
    assert set(PLOTS.values()) <= set(board["plots"])

    html = dashboard_html(project, monkeypatch)
    assert f"threshold {second.threshold:.3f}" in html
    assert f"threshold {first.threshold:.3f}" not in html
    assert f"{calibration.created_at:%Y-%m-%d %H:%M} UTC" in html
    assert "not the calibration routing uses now" not in html


def test_plots_of_another_predictor_say_so(make_project, monkeypatch):
    project = overconfident_project(make_project)
    project.calibrate(budget=0.3, plots_dir=project.path / "plots")
    # A predictor without a calibration of its own takes over routing.
    ids = [project.item_id(f"p{i}") for i in range(3)]
    from test_routing import Result

    project.save_predictions("other", "v2", [(i, Result("positive", 0.9, None)) for i in ids])
    project.set_active_predictor("other", "v2")
    board = project.dashboard().to_dict()
    assert board["calibration_plots"]["model"] == "m"
    assert not board["calibration_plots"]["current"]
    assert "not the calibration routing uses now" in dashboard_html(project, monkeypatch)


def test_gold_accuracy_names_the_routing_predictor(make_project, monkeypatch):
    project = overconfident_project(make_project)
    assert 'accuracy on gold: <span class="predictor">LLM m</span>' in dashboard_html(
        project, monkeypatch
    )
    project.update_settings(active_predictor={"model": "ensemble", "prompt_version": "x"})
    html = dashboard_html(project, monkeypatch)
    assert "stack (LLMs + student)" in html and "LLM accuracy" not in html
    assert project.dashboard().to_dict()["calibration_plots"] is None  # none drawn, none asked


def test_plots_are_drawn_for_a_calibration_that_drew_none(make_project, monkeypatch):
    project = overconfident_project(make_project)
    project.calibrate(budget=0.3)  # no plots asked for, no plots/ folder
    board = project.dashboard().to_dict()
    assert board["calibration_plots"]["current"]
    assert set(PLOTS.values()) <= set(board["plots"])  # listed on the first view
    html = dashboard_html(project, monkeypatch)
    assert all(f'src="/plots/{name}"' in html for name in PLOTS.values())
