"""Behaviour of each query strategy on small synthetic pools."""

import numpy as np
import pytest

from labelloop.active import STRATEGIES, cold_start, get_strategy, greedy_k_center
from labelloop.active.strategies import (
    CommitteeDisagreement,
    Hybrid,
    Margin,
    expected_gradient_length,
    kl_to_consensus,
    take_distinct,
    vote_entropy,
)
from labelloop.active.strategies.diversity import labeled_distance

N, C, D = 400, 3, 16


@pytest.fixture()
def pool():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype(np.float32)
    proba = rng.dirichlet(np.ones(C), size=N)
    labeled = np.zeros(N, dtype=bool)
    labeled[rng.choice(N, 30, replace=False)] = True
    committee = np.stack([rng.dirichlet(np.ones(C), size=N) for _ in range(4)])
    llm = rng.dirichlet(np.ones(C), size=N)
    return {
        "embeddings": x,
        "proba": proba,
        "labeled_mask": labeled,
        "committee_probas": committee,
        "llm_proba": llm,
    }


def test_registry_has_the_cli_names():
    assert set(STRATEGIES) == {
        "random",
        "least-confidence",
        "margin",
        "entropy",
        "diversity",
        "coreset",
        "committee",
        "expected-model-change",
        "badge",
        "hybrid",
        "disagreement",
    }
    with pytest.raises(ValueError, match="unknown strategy"):
        get_strategy("nope")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_returns_k_distinct_unlabeled_items(name, pool):
    picked = get_strategy(name).select(25, random_state=1, **pool)
    assert len(picked) == 25 and len(set(picked.tolist())) == 25
    assert not pool["labeled_mask"][picked].any()


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_cold_start_with_no_labels(name, pool):
    pool = {**pool, "labeled_mask": np.zeros(N, dtype=bool)}
    picked = get_strategy(name).select(10, random_state=1, **pool)
    assert len(set(picked.tolist())) == 10


@pytest.mark.parametrize("name", sorted(set(STRATEGIES) - {"random"}))
def test_no_near_duplicates_in_a_batch(name, pool):
    x = pool["embeddings"].copy()
    # Every item gets a near-copy: the most useful item's twin is equally useful.
    twins = x + np.random.default_rng(1).normal(scale=1e-3, size=x.shape).astype(np.float32)
    doubled = {
        "embeddings": np.vstack([x, twins]),
        "proba": np.vstack([pool["proba"]] * 2),
        "labeled_mask": np.concatenate([pool["labeled_mask"]] * 2),
        "committee_probas": np.concatenate([pool["committee_probas"]] * 2, axis=1),
        "llm_proba": np.vstack([pool["llm_proba"]] * 2),
    }
    picked = get_strategy(name).select(30, random_state=0, **doubled)
    unit = doubled["embeddings"][picked]
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    sims = unit @ unit.T - 2 * np.eye(len(picked))
    assert sims.max() <= 0.95


def test_uncertainty_strategies_pick_the_most_uncertain():
    proba = np.array(
        [[0.98, 0.01, 0.01], [0.34, 0.33, 0.33], [0.5, 0.495, 0.005], [0.9, 0.05, 0.05]]
    )
    unlabeled = np.zeros(4, dtype=bool)
    # Without embeddings nothing is de-duplicated, and nothing cold-starts.
    mask = unlabeled.copy()
    mask[3] = True
    assert get_strategy("entropy").select(1, proba=proba, labeled_mask=mask)[0] == 1
    assert get_strategy("least-confidence").select(1, proba=proba, labeled_mask=mask)[0] == 1
    # Margin prefers the 0.500 / 0.495 split (gap .005) to the near three-way tie (gap .01).
    assert get_strategy("margin").select(1, proba=proba, labeled_mask=mask)[0] == 2


def test_margin_breaks_ties_deterministically():
    # Rows 0, 1, 2 share margin 0.2; row 2 spreads more mass on the third label.
    proba = np.array([[0.6, 0.4, 0.0], [0.6, 0.4, 0.0], [0.5, 0.3, 0.2], [0.9, 0.1, 0.0]])
    mask = np.zeros(4, dtype=bool)
    picked = Margin().select(3, proba=proba, labeled_mask=mask)
    np.testing.assert_array_equal(picked, [2, 0, 1])
    shuffled = Margin().select(3, proba=proba[[1, 0, 2, 3]], labeled_mask=mask)
    np.testing.assert_array_equal(shuffled, [2, 0, 1])


def test_diversity_picks_the_point_far_from_the_labeled_set():
    rng = np.random.default_rng(2)
    x = np.vstack([rng.normal([5, 0, 0], 0.1, size=(50, 3)), [[0, 0, 5]]]).astype(np.float32)
    mask = np.zeros(len(x), dtype=bool)
    mask[:5] = True
    assert get_strategy("diversity").select(1, embeddings=x, labeled_mask=mask)[0] == 50


def naive_k_center(x, k, labeled):
    """Textbook greedy k-center with a dense distance matrix: the reference."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    dist = 1 - unit @ unit.T
    m = dist[:, labeled].min(axis=1) if labeled.any() else np.full(len(x), np.inf)
    m[labeled] = -np.inf
    picked = []
    for _ in range(k):
        i = int(np.argmax(m))
        picked.append(i)
        m = np.minimum(m, dist[:, i])
        m[picked] = -np.inf
    return picked


@pytest.mark.parametrize("flush_every", [1, 3, 64])
def test_lazy_k_center_equals_textbook_greedy(flush_every):
    rng = np.random.default_rng(4)
    centers = rng.normal(size=(8, 24))
    x = (centers[rng.integers(0, 8, 3000)] + rng.normal(scale=0.5, size=(3000, 24))).astype(
        np.float32
    )
    labeled = np.zeros(len(x), dtype=bool)
    labeled[:40] = True
    start = labeled_distance(x, labeled)
    start[labeled] = -np.inf
    fast = greedy_k_center(x, 40, start, flush_every=flush_every)
    assert fast.tolist() == naive_k_center(x, 40, labeled)


def test_coreset_covers_every_cluster():
    rng = np.random.default_rng(5)
    directions = np.eye(6)
    x = np.vstack([d + rng.normal(scale=0.05, size=(60, 6)) for d in directions]).astype(np.float32)
    mask = np.zeros(len(x), dtype=bool)
    mask[:3] = True  # only cluster 0 is labeled
    picked = get_strategy("coreset").select(5, embeddings=x, labeled_mask=mask)
    assert sorted(set((picked // 60).tolist())) == [1, 2, 3, 4, 5]


def test_cold_start_spreads_over_clusters():
    rng = np.random.default_rng(6)
    x = np.vstack([np.eye(4)[i] * 3 + rng.normal(scale=0.1, size=(100, 4)) for i in range(4)])
    picked = cold_start(4, x, np.zeros(len(x), dtype=bool), random_state=0)
    assert sorted((picked // 100).tolist()) == [0, 1, 2, 3]


def test_committee_measures_and_llm_member():
    agree = np.tile([[0.9, 0.05, 0.05]], (3, 1))
    split = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
    members = np.stack([agree, agree, agree]).copy()
    members[:, 1] = split  # item 1: every member votes differently
    assert vote_entropy(members)[1] == pytest.approx(np.log(3))
    assert vote_entropy(members)[0] == pytest.approx(0.0)
    assert kl_to_consensus(members)[1] > kl_to_consensus(members)[0]
    # The LLM disagreeing with a unanimous committee on item 2 makes item 2 the pick.
    llm = agree.copy()
    llm[2] = [0.05, 0.9, 0.05]
    mask = np.array([False, True, False])
    picked = CommitteeDisagreement().select(
        1, committee_probas=members, llm_proba=llm, labeled_mask=mask
    )
    assert picked[0] == 2
    without_llm = CommitteeDisagreement("kl").select(1, committee_probas=members, labeled_mask=mask)
    assert without_llm[0] == 0  # tie between 0 and 2 broken by index


def test_expected_gradient_length_matches_explicit_gradients():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(20, 5))
    p = rng.dirichlet(np.ones(4), size=20)
    xb = np.hstack([x, np.ones((20, 1))])
    explicit = [
        sum(p[i, y] * np.linalg.norm(np.outer(p[i] - np.eye(4)[y], xb[i])) for y in range(4))
        for i in range(20)
    ]
    np.testing.assert_allclose(expected_gradient_length(p, x), explicit, rtol=1e-5)


def test_badge_returns_distinct_and_starts_from_the_longest_gradient(pool):
    picked = get_strategy("badge").select(40, random_state=3, **pool)
    assert len(set(picked.tolist())) == 40
    a = pool["proba"].copy()
    a[np.arange(N), a.argmax(1)] -= 1
    g = np.linalg.norm(a, axis=1) * np.sqrt((pool["embeddings"] ** 2).sum(1) + 1)
    g[pool["labeled_mask"]] = -1
    assert picked[0] == np.argmax(g)


def test_hybrid_weight_one_is_entropy_and_zero_is_diversity(pool):
    inputs = {k: pool[k] for k in ("proba", "embeddings", "labeled_mask")}
    by_entropy = get_strategy("entropy").select(10, **inputs)
    by_diversity = get_strategy("diversity").select(10, **inputs)
    np.testing.assert_array_equal(Hybrid(1.0).select(10, **inputs), by_entropy)
    np.testing.assert_array_equal(Hybrid(0.0).select(10, **inputs), by_diversity)


def test_disagreement_picks_where_llm_and_student_differ():
    student = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    llm = np.array([[0.88, 0.12], [0.1, 0.9], [0.25, 0.75]])
    picked = get_strategy("disagreement").select(
        1, proba=student, llm_proba=llm, labeled_mask=np.zeros(3, dtype=bool)
    )
    assert picked[0] == 1


def test_missing_inputs_are_named(pool):
    with pytest.raises(ValueError, match="llm_proba"):
        get_strategy("disagreement").select(
            3,
            proba=pool["proba"],
            embeddings=pool["embeddings"],
            labeled_mask=pool["labeled_mask"],
        )
    with pytest.raises(ValueError, match="rows"):
        get_strategy("entropy").select(
            3, proba=pool["proba"][:5], labeled_mask=pool["labeled_mask"]
        )


def test_take_distinct_skips_duplicates_across_chunks():
    x = np.repeat(np.eye(3, dtype=np.float32), 5, axis=0)  # 3 distinct directions, 5 copies
    order = np.arange(15)
    np.testing.assert_array_equal(take_distinct(order, 3, x, chunk=4), [0, 5, 10])
    assert len(take_distinct(order, 10, x, chunk=4)) == 3


def test_pruned_coreset_equals_textbook_greedy(monkeypatch):
    from labelloop.active import _index

    monkeypatch.setattr(_index, "EXACT_CELLS", 0)  # the index, not every distance
    rng = np.random.default_rng(8)
    centers = rng.normal(size=(10, 24)) * 2
    x = (centers[rng.integers(0, 10, 4000)] + rng.normal(size=(4000, 24))).astype(np.float32)
    labeled = np.zeros(len(x), dtype=bool)
    labeled[rng.choice(len(x), 200, replace=False)] = True
    strategy = get_strategy("coreset")
    assert strategy.select(60, embeddings=x, labeled_mask=labeled).tolist() == naive_k_center(
        x, 60, labeled
    )
    labeled[rng.choice(np.flatnonzero(~labeled), 100, replace=False)] = True  # next round
    assert strategy.select(60, embeddings=x, labeled_mask=labeled).tolist() == naive_k_center(
        x, 60, labeled
    )
