"""Query by committee: ask where the members (students, the LLM) disagree."""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy

from labelloop.active.strategies.base import ScoreStrategy

_EPS = 1e-12


def vote_entropy(committee_probas: np.ndarray) -> np.ndarray:
    """Entropy of the members' hard votes (Dagan & Engelson, 1995)."""
    n_members, _, n_classes = committee_probas.shape
    votes = committee_probas.argmax(axis=2)
    counts = np.stack([(votes == c).sum(axis=0) for c in range(n_classes)], axis=1)
    shares = counts / n_members
    return -np.sum(xlogy(shares, shares), axis=1)


def kl_to_consensus(committee_probas: np.ndarray) -> np.ndarray:
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

    def _members(self, committee_probas: np.ndarray, llm_proba: np.ndarray | None) -> np.ndarray:
        members = np.asarray(committee_probas, dtype=np.float64)
        if llm_proba is not None:
            members = np.concatenate([members, np.asarray(llm_proba, dtype=np.float64)[None]])
        return members

    def scores(
        self, *, committee_probas: np.ndarray, llm_proba: np.ndarray | None = None, **_: object
    ) -> np.ndarray:
        members = self._members(committee_probas, llm_proba)
        return vote_entropy(members) if self.measure == "vote_entropy" else kl_to_consensus(members)

    def tie_break(
        self, *, committee_probas: np.ndarray, llm_proba: np.ndarray | None = None, **_: object
    ) -> np.ndarray:
        return kl_to_consensus(self._members(committee_probas, llm_proba))
