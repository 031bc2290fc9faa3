"""Students always answer over the full label set, and cross-fitting is out-of-fold."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import NotFittedError
from sklearn.naive_bayes import GaussianNB
from sklearn.utils import estimator_checks

from labelloop.active import Committee, LogisticStudent, SklearnStudent, cross_val_proba

LABELS = ["neg", "neu", "pos"]


@pytest.fixture()
def data():
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=3, size=(3, 8))
    y_idx = rng.integers(0, 3, 300)
    x = centers[y_idx] + rng.normal(size=(300, 8))
    return x, np.array(LABELS)[y_idx]


@pytest.mark.parametrize("n_seen", [0, 1, 2, 3])
def test_columns_cover_the_full_label_set(data, n_seen):
    x, y = data
    keep = np.isin(y, LABELS[:n_seen])
    student = LogisticStudent(classes=LABELS).fit(x[keep], y[keep])
    proba = student.predict_proba(x)
    assert proba.shape == (300, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    unseen = [i for i, label in enumerate(LABELS) if label not in LABELS[:n_seen]]
    if n_seen >= 1:
        assert np.all(proba[:, unseen] == 0)
    if n_seen == 0:
        np.testing.assert_allclose(proba, 1 / 3)
    if n_seen == 1:
        assert np.all(student.predict(x) == LABELS[0])


def test_a_single_seen_class_works_for_any_label_dtype(data):
    x, _ = data
    for y in (np.array(["pos"] * 5, dtype=object), np.array(["pos"] * 5), np.array([2] * 5)):
        classes = ["neg", "neu", "pos"] if y.dtype.kind != "i" else [0, 1, 2]
        proba = LogisticStudent(classes=classes).fit(x[:5], y).predict_proba(x)
        assert np.all(proba[:, 2] == 1.0)


def test_a_single_example_per_class_still_trains(data):
    x, y = data
    rows = [np.flatnonzero(y == label)[0] for label in LABELS]
    proba = LogisticStudent(classes=LABELS).fit(x[rows], y[rows]).predict_proba(x[rows])
    assert np.all(proba.argmax(axis=1) == [0, 1, 2])


def test_column_order_follows_the_label_set_not_the_data(data):
    x, y = data
    reordered = ["pos", "neg", "neu"]
    a = LogisticStudent(classes=LABELS).fit(x, y).predict_proba(x)
    b = LogisticStudent(classes=reordered).fit(x, y).predict_proba(x)
    np.testing.assert_allclose(b, a[:, [2, 0, 1]], atol=1e-6)


def test_labels_outside_the_set_are_rejected(data):
    x, y = data
    with pytest.raises(ValueError, match="not in the label set"):
        LogisticStudent(classes=["neg", "pos"]).fit(x, y)


def test_sklearn_student_wraps_any_classifier(data):
    x, y = data
    student = SklearnStudent(RandomForestClassifier(n_estimators=20, random_state=0), LABELS)
    assert (student.fit(x[:200], y[:200]).predict(x[200:]) == y[200:]).mean() > 0.9


def test_class_weight_balanced_shifts_towards_the_rare_class():
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(0, 1, (190, 2)), rng.normal(1.2, 1, (10, 2))]
    y = np.array(["a"] * 190 + ["b"] * 10)
    plain = LogisticStudent().fit(x, y).predict_proba(x)[:, 1].mean()
    balanced = LogisticStudent(class_weight="balanced").fit(x, y).predict_proba(x)[:, 1].mean()
    assert balanced > plain


def test_committee_bootstrap_models_and_llm_member(data):
    x, y = data
    llm = np.tile([1.0, 0.0, 0.0], (len(x), 1))
    committee = Committee(
        [SklearnStudent(GaussianNB(), LABELS)],
        base=LogisticStudent(classes=LABELS),
        n_bootstrap=3,
        external=[llm],
        random_state=0,
    ).fit(x[:100], y[:100])
    members = committee.member_probas(x)
    assert members.shape == (5, 300, 3)
    np.testing.assert_array_equal(members[-1], llm)
    np.testing.assert_allclose(committee.predict_proba(x), members.mean(axis=0))
    # Bootstrap members differ from one another.
    assert not np.allclose(members[1], members[2])
    with pytest.raises(ValueError, match="rows"):
        committee.member_probas(x[:10])


def test_cross_val_proba_is_out_of_fold(data):
    x, y = data
    # Pure noise features with a memorising model: in-sample looks perfect, out-of-fold cannot.
    noise = np.random.default_rng(2).normal(size=x.shape)
    student = SklearnStudent(RandomForestClassifier(n_estimators=30, random_state=0), LABELS)
    in_sample = student.fit(noise, y).predict_proba(noise).argmax(axis=1)
    oof = cross_val_proba(student, noise, y, n_splits=5, random_state=0)
    assert oof.shape == (300, 3)
    y_idx = np.searchsorted(LABELS, y)
    assert (in_sample == y_idx).mean() > 0.95
    assert (oof.argmax(axis=1) == y_idx).mean() < 0.5


def test_cross_val_proba_with_tiny_classes(data):
    x, y = data
    rows = np.r_[np.flatnonzero(y == "neg")[:6], np.flatnonzero(y == "pos")[:1]]
    oof = cross_val_proba(LogisticStudent(classes=LABELS), x[rows], y[rows], n_splits=5)
    assert oof.shape == (7, 3)
    np.testing.assert_allclose(oof.sum(axis=1), 1.0)


#: scikit-learn's own checks of the estimator rules that fit students and committees: arguments
#: stored unchanged and nothing else set in __init__, fit leaves them alone, NotFittedError
#: before fit, repeated fits agree, pickling keeps predictions.
ESTIMATOR_RULES = [
    estimator_checks.check_no_attributes_set_in_init,
    estimator_checks.check_parameters_default_constructible,
    estimator_checks.check_get_params_invariance,
    estimator_checks.check_set_params,
    estimator_checks.check_dont_overwrite_parameters,
    estimator_checks.check_estimators_overwrite_params,
    estimator_checks.check_estimators_unfitted,
    estimator_checks.check_fit_check_is_fitted,
    estimator_checks.check_fit_idempotent,
    estimator_checks.check_estimators_pickle,
]


@pytest.mark.parametrize(
    "estimator",
    [LogisticStudent(random_state=0), SklearnStudent(GaussianNB()), Committee(n_bootstrap=2)],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.parametrize("check", ESTIMATOR_RULES, ids=lambda c: c.__name__)
def test_students_and_committees_keep_the_estimator_rules(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checks' deliberately awkward data warn
        check(type(estimator).__name__, estimator)


def test_a_committee_is_checked_at_fit_and_cloned_without_its_members(data):
    x, y = data
    with pytest.raises(ValueError, match="at least one member"):
        Committee().fit(x, y)
    llm = np.tile([0.2, 0.3, 0.5], (len(x), 1))
    committee = Committee(n_bootstrap=2, external=[llm], random_state=0)
    with pytest.raises(NotFittedError):
        committee.member_probas(x)  # not just the external member, silently
    committee.fit(x[:100], y[:100])
    again = clone(committee)
    assert again.get_params()["n_bootstrap"] == 2 and again.external[0] is not llm
    np.testing.assert_array_equal(again.external[0], llm)
    with pytest.raises(NotFittedError):
        again.predict_proba(x)
    np.testing.assert_array_equal(
        again.fit(x[:100], y[:100]).member_probas(x), committee.member_probas(x)
    )
