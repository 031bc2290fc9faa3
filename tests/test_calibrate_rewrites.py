"""Applying a calibration rewrites exactly the predictions whose calibrated values differ."""

from __future__ import annotations

from sqlalchemy import select, update

from labelloop.store.models import Prediction
from labelloop.workflows.calibrate import apply_calibration
from test_calibrate_workflow import overconfident_project


def _calibrated(project) -> dict[int, tuple]:
    with project.store.session() as session:
        rows = session.execute(
            select(Prediction.id, Prediction.calibrated_label, Prediction.calibrated_confidence)
        )
        return {r.id: (r.calibrated_label, r.calibrated_confidence) for r in rows}


def test_reapplying_a_calibration_restores_every_stale_value(make_project):
    project = overconfident_project(make_project, n_gold=60, n_pool=40)
    project.calibrate(method="vector", budget=0.3)  # vector scaling can move labels
    written = _calibrated(project)
    assert all(confidence is not None for _, confidence in written.values())
    stale = sorted(written)[::7]
    with project.store.session() as session:
        for n, pid in enumerate(stale):  # wrong confidence, wrong label, or both gone
            values = [
                {"calibrated_confidence": 0.123},
                {"calibrated_label": "nonsense"},
                {"calibrated_confidence": None, "calibrated_label": None},
            ][n % 3]
            session.execute(update(Prediction).where(Prediction.id == pid).values(**values))
    assert _calibrated(project) != written
    assert apply_calibration(project, "m", "v1") == len(written)
    assert _calibrated(project) == written
