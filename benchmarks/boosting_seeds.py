"""How much the boosting members move with nothing but their seed: the gbm_stacked baseline
(scikit-learn's histogram boosting) and the specialist's boosted member (LightGBM), each over
the structured fields and out-of-fold TF-IDF scores, fitted on the same development rows with
seeds 0 to N-1 and scored on the held-out rows. A single run's gap between them, or between the
specialist and gbm_stacked, means little where it is smaller than this spread.

    python -m claims generate --language pt --n 4000 --seed 7 --out runs/pt/claims_pt.csv
    python -m benchmarks.boosting_seeds --data runs/pt/claims_pt.csv \
        --config claims/defaults/synthetic_pt.toml --name synthetic_pt

Writes benchmarks/results/boosting-seeds-<name>.json and redraws docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

from benchmarks.benchmark_docs import keep
from benchmarks.common import provenance, seed_spread
from claims.data.dataset import LabelledClaims, load_claims
from claims.domain.config import load_config
from claims.model.encoder import file_sha256
from claims.model.features import StructuredFeatures
from claims.model.stack import BOOSTED
from training.baselines import StructuredBoostingBaseline
from training.labels import IGNORE, label_indices, resolve_labels
from training.partner import fit_partner


def _primary(truth: np.ndarray, probabilities: np.ndarray) -> float:
    """AUC for a yes/no task, macro-F1 of the most probable label otherwise (as evaluated)."""
    known = truth != IGNORE
    if probabilities.shape[1] == 2:
        return float(roc_auc_score(truth[known], probabilities[known, 1]))
    return float(f1_score(truth[known], probabilities[known].argmax(1), average="macro"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--seeds", type=int, default=5)
    arguments = parser.parse_args()

    config = load_config(arguments.config)
    development, test = load_claims(arguments.data, config).split()
    labels = {t.name: resolve_labels(t, development.labels[t.name]) for t in config.tasks}
    counts = {task: len(names) for task, names in labels.items()}

    def indices(split: LabelledClaims) -> dict[str, np.ndarray]:
        ids = [claim.claim_id for claim in split.claims]
        return {t: label_indices(t, split.labels[t], labels[t], ids) for t in labels}

    targets, truth = indices(development), indices(test)
    features = StructuredFeatures.fit(
        development.claims, config.input.numeric, config.input.categorical
    )
    texts = [claim.description for claim in test.claims]
    scores: dict[str, list[dict[str, float]]] = {"gbm_stacked": [], "boosted_member": []}
    for seed in range(arguments.seeds):
        baseline = StructuredBoostingBaseline(features, with_text=True, seed=seed)
        answers = baseline.fit(development.claims, targets, counts).predict_proba(test.claims)
        scores["gbm_stacked"].append({t: _primary(truth[t], answers[t]) for t in labels})
        partner = fit_partner(
            development.claims, features.transform(development.claims), targets, counts, seed
        )
        boosted = partner.predict_proba(partner.inputs(texts, features.transform(test.claims)))
        scores["boosted_member"].append(
            {t: _primary(truth[t], boosted[BOOSTED][t]) for t in labels}
        )
        print(seed, {system: runs[-1] for system, runs in scores.items()}, flush=True)

    summary = {system: seed_spread(runs) for system, runs in scores.items()}
    result = {
        **provenance(),
        "dataset": arguments.data.name,
        "data_sha256": file_sha256(arguments.data),
        "test_rows": len(test),
        "seeds": arguments.seeds,
        "runs": scores,
        "summary": summary,
    }
    print(keep("boosting-seeds", arguments.name, result))  # and redraws docs/benchmarks.md
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
