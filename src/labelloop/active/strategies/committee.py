"""Query by committee: ask where the members (students, the LLM) disagree."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import xlogy

from labelloop.active.strategies.base import FloatArray, Pool, ScoreStrategy

_EPS = 1e-12


def vote_entropy(committee_probas: FloatArray) -> NDArray[np.float64]:
    """Entropy of the members' hard votes (Dagan & Engelson, 1995)."""
    n_members, _, n_classes = committee_probas.shape
    votes = committee_probas.argmax(axis=2)
    counts = np.stack([(votes == c).sum(axis=0) for c in range(n_classes)], axis=1)
    shares = counts / n_members
    return -np.sum(xlogy(shares, shares), axis=1)


def kl_to_consensus(committee_probas: FloatArray) -> FloatArray:
    """Mean KL divergence of each member from the consensus (McCallum & Nigam, 1998)."""
    consensus = committee_probas.mean(axis=0)
    p = np.clip(committee_probas, _EPS, 1.0)
    kl = np.sum(p * (np.log(p) - np.log(np.clip(consensus, _EPS, 1.0))[None]), axis=2)
    return kl.mean(axis=0)


class CommitteeDisagreement(ScoreStrategy):
    """Vote entropy (default) or mean KL to the consensus over `committee_probas`.

    `llm_proba`, when given, joins the committee as one more member. Hard votes tie often,
    so equal vote entropies are broken by KL to the consensus.
    """

    name = "committee"
    requires = frozenset({"committee_probas"})

    def __init__(self, measure: str = "vote_entropy") -> None:
        if measure not in {"vote_entropy", "kl"}:
            raise ValueError(f"unknown disagreement measure {measure!r}")
        self.measure = measure

    @staticmethod
    def _members(pool: Pool) -> NDArray[np.float64]:
        members = np.asarray(pool.need("committee_probas"), dtype=np.float64)
        if pool.llm_proba is not None:
            members = np.concatenate([members, np.asarray(pool.llm_proba, dtype=np.float64)[None]])
        return members

    def scores(self, pool: Pool) -> FloatArray:
        members = self._members(pool)
        return vote_entropy(members) if self.measure == "vote_entropy" else kl_to_consensus(members)

    def tie_break(self, pool: Pool) -> FloatArray:
        return kl_to_consensus(self._members(pool))
