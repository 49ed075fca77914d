"""Similar past claims for the claim page: among the claims settled most recently (those with
confirmed feedback), the few whose narratives are closest to this claim's, with the labels
adjusters settled on.

Closeness is the cosine of TF-IDF vectors of words and word pairs (the words the stack's text
member reads), fitted on the candidates and the claim at each request: no state to keep up to
date, and the cost is bounded by the number of candidates."""

from __future__ import annotations

from dataclasses import dataclass

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import linear_kernel

from claims.model.stack import WORD_TFIDF
from claims.store import Store
from claims.store.settled import SettledClaim
from schemas.claim import Claim

CANDIDATES = 1000  # the most recently settled claims compared with this one
SHOWN = 5
LEAST_SIMILARITY = 0.1  # below this a claim has too little in common to be worth showing


@dataclass(frozen=True)
class Similar:
    settled: SettledClaim
    similarity: float


def similar_settled(store: Store, claim: Claim, shown: int = SHOWN) -> list[Similar]:
    """Up to `shown` settled claims, most similar first; the claim itself is left out."""
    candidates = store.settled_claims(CANDIDATES, leave_out=claim.claim_id)
    if not candidates:
        return []
    vectorizer = TfidfVectorizer(**WORD_TFIDF)
    try:
        vectors = vectorizer.fit_transform(
            [candidate.claim.description for candidate in candidates] + [claim.description]
        )
    except ValueError:  # no word in any narrative: nothing to compare
        return []
    # rows are L2-normalised, so their dot products are the cosines
    similarities = linear_kernel(vectors[-1], vectors[:-1]).ravel()
    ranked = sorted(range(len(candidates)), key=lambda index: -similarities[index])
    return [
        Similar(candidates[index], float(similarities[index]))
        for index in ranked[:shown]
        if similarities[index] >= LEAST_SIMILARITY
    ]
