"""The stack's other members, stored exactly as they were fitted, and the weights that pool them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import training.partner as partner_module
from claims.data.dataset import frame_to_claims
from claims.domain.config import load_config
from claims.model.checkpoint import (
    PARTNER,
    PARTNER_ARRAYS,
    CheckpointError,
    FallbackCode,
    load_checkpoint,
)
from claims.model.features import StructuredFeatures
from claims.model.stack import (
    BOOSTED,
    LINEAR,
    TEXT,
    TUNED,
    BoostedPartner,
    stack,
)
from schemas.config import Strategy
from tests.helpers import quick_config
from training.baselines import TfidfLogisticBaseline
from training.data import split_validation
from training.labels import IGNORE, label_indices, resolve_labels
from training.partner import (
    LINEAR_STRENGTHS,
    PartnerFit,
    fit_partner,
    fit_stack,
    fit_stack_weights,
    stack_log_loss,
)
from training.trainer import SpecialistTrainer


@pytest.fixture(scope="module")
def fitted(claims_frame: pd.DataFrame):
    config = load_config()
    development, test = frame_to_claims(claims_frame, config, source="synthetic").split()
    labels = {t.name: resolve_labels(t, development.labels[t.name]) for t in config.tasks}
    ids = [c.claim_id for c in development.claims]
    targets = {t: label_indices(t, development.labels[t], labels[t], ids) for t in labels}
    counts = {task: len(names) for task, names in labels.items()}
    features = StructuredFeatures.fit(
        development.claims, config.input.numeric, config.input.categorical
    )
    partner = fit_partner(
        development.claims, features.transform(development.claims), targets, counts, seed=0
    )
    return development, test, features, targets, counts, partner


def test_the_stored_text_scorer_gives_scikit_learns_probabilities(fitted) -> None:
    development, test, _, targets, counts, partner = fitted
    reference = TfidfLogisticBaseline().fit(development.claims, targets, counts)
    expected = np.hstack(list(reference.predict_proba(test.claims).values()))
    stored = partner.text.scores([claim.description for claim in test.claims])
    np.testing.assert_allclose(stored, expected, atol=1e-9)


def test_the_partner_reloads_from_its_files_to_identical_probabilities(
    fitted, tmp_path: Path
) -> None:
    _, test, features, _, _, partner = fitted
    partner.save(tmp_path / PARTNER, tmp_path / PARTNER_ARRAYS)
    reloaded = BoostedPartner.load(tmp_path / PARTNER, tmp_path / PARTNER_ARRAYS)
    texts = [claim.description for claim in test.claims]
    inputs = partner.inputs(texts, features.transform(test.claims))
    before, after = partner.predict_proba(inputs), reloaded.predict_proba(inputs)
    assert set(before) == {TEXT, BOOSTED, LINEAR}
    for member, tasks in before.items():
        for task, values in tasks.items():
            np.testing.assert_allclose(values.sum(axis=1), 1.0)
            np.testing.assert_array_equal(after[member][task], values)


def test_the_partner_learns_claim_type(fitted) -> None:
    _, test, features, _, _, partner = fitted
    labels = {t.name: resolve_labels(t, test.labels[t.name]) for t in load_config().tasks}
    truth = label_indices(
        "claim_type",
        test.labels["claim_type"],
        labels["claim_type"],
        [c.claim_id for c in test.claims],
    )
    inputs = partner.inputs([c.description for c in test.claims], features.transform(test.claims))
    for member in (TEXT, BOOSTED, LINEAR):
        answers = partner.predict_proba(inputs)[member]["claim_type"]
        assert (answers.argmax(1) == truth).mean() > 0.5


def test_the_linear_members_contributions_add_up_to_its_margins(fitted) -> None:
    """Explanations read the linear member's per-feature shares: with its intercept they are
    exactly the log-odds (binary) or the raw scores up to a constant (multiclass) it answers."""
    _, test, features, _, counts, partner = fitted
    inputs = partner.inputs([c.description for c in test.claims], features.transform(test.claims))
    answers = partner.predict_proba(inputs)[LINEAR]
    for task in counts:
        shares = partner.linear_contributions(task, inputs).sum(axis=2)
        intercept = partner.arrays[f"linear.intercept.{task}"]
        probabilities = answers[task]
        if len(intercept) == 1:
            log_odds = np.log(probabilities[:, 1] / probabilities[:, 0])
            np.testing.assert_allclose(shares[:, 1] + intercept[0], log_odds, atol=1e-6)
            np.testing.assert_allclose(shares[:, 0], -shares[:, 1])
        else:
            seen = partner.state.linear_classes[task]
            raw = shares[:, seen] + intercept
            expected = np.log(probabilities[:, seen])
            np.testing.assert_allclose(
                raw - raw.mean(axis=1, keepdims=True),
                expected - expected.mean(axis=1, keepdims=True),
                atol=1e-6,
            )


def test_a_partner_saved_before_the_linear_member_loads_and_serves_without_it(
    fitted, tmp_path: Path
) -> None:
    _, test, features, _, _, partner = fitted
    arrays = {k: v for k, v in partner.arrays.items() if not k.startswith("linear.")}
    BoostedPartner(partner.state, arrays).save(tmp_path / PARTNER, tmp_path / PARTNER_ARRAYS)
    written = json.loads((tmp_path / PARTNER).read_text())
    del written["linear_classes"]  # as partner.json was written before the member existed
    (tmp_path / PARTNER).write_text(json.dumps(written))
    reloaded = BoostedPartner.load(tmp_path / PARTNER, tmp_path / PARTNER_ARRAYS)
    inputs = partner.inputs([c.description for c in test.claims], features.transform(test.claims))
    answers = reloaded.predict_proba(inputs)
    assert set(answers) == {TEXT, BOOSTED}
    for task, values in answers[BOOSTED].items():
        np.testing.assert_array_equal(values, partner.predict_proba(inputs)[BOOSTED][task])


def _sure_where(truth: np.ndarray, sure: np.ndarray) -> np.ndarray:
    """Binary probabilities that put `sure` on the true label of each row."""
    return np.column_stack(
        [np.where(truth == 0, sure, 1 - sure), np.where(truth == 1, sure, 1 - sure)]
    )


def test_the_stack_weighs_a_useless_member_out_and_mixes_complementary_ones() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 400)
    good = _sure_where(truth, np.full(400, 0.8))
    useless = np.full((400, 2), 0.5)
    weights = fit_stack_weights({TUNED: good, TEXT: useless}, truth)
    assert weights[TUNED] > 1.0 and weights[TEXT] == pytest.approx(0.0, abs=1e-3)
    # each member sure and right on its own half of the rows, unsure on the other: pool both
    first = np.arange(400) < 200
    members = {
        TUNED: _sure_where(truth, np.where(first, 0.9, 0.5)),
        TEXT: _sure_where(truth, np.where(first, 0.5, 0.9)),
    }
    weights = fit_stack_weights(members, truth)
    assert min(weights.values()) > 0.5
    pooled = stack_log_loss(members, truth, weights)
    assert pooled < min(stack_log_loss(members, truth, {m: 1.0}) for m in members)


def test_the_stack_never_fits_worse_than_the_first_member_alone() -> None:
    """The pool starts from the tuned model alone and keeps it if nothing lowers the loss."""
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 4, 300)
    members = {m: rng.dirichlet(np.ones(4), 300) for m in (TUNED, TEXT, BOOSTED)}
    weights = fit_stack_weights(members, truth)
    assert stack_log_loss(members, truth, weights) <= stack_log_loss(members, truth, {TUNED: 1})
    served = stack(members, weights)
    np.testing.assert_allclose(served.sum(axis=1), 1.0)
    np.testing.assert_allclose(stack(members, {TUNED: 1.0}), members[TUNED], rtol=1e-9)


def test_the_stack_is_fitted_per_task_on_the_labelled_validation_rows(
    fitted, tmp_path: Path
) -> None:
    _, test, features, _, counts, fitted_partner = fitted
    fitted_partner.save(tmp_path / PARTNER, tmp_path / PARTNER_ARRAYS)  # a copy to change
    partner = BoostedPartner.load(tmp_path / PARTNER, tmp_path / PARTNER_ARRAYS)
    labels = {t.name: resolve_labels(t, test.labels[t.name]) for t in load_config().tasks}
    ids = [c.claim_id for c in test.claims]
    targets = {t: label_indices(t, test.labels[t], labels[t], ids) for t in counts}
    targets["severity"][: len(ids) // 2] = IGNORE
    targets["siu_referral"][:] = IGNORE  # nothing to fit on: the tuned model stays alone
    rng = np.random.default_rng(0)
    tuned = {task: rng.dirichlet(np.ones(count), len(ids)) for task, count in counts.items()}
    texts, structured = [c.description for c in test.claims], features.transform(test.claims)
    served, notes = fit_stack(partner, tuned, texts, structured, targets)
    assert set(notes) == {"stack.claim_type", "stack.severity"}
    members = {TUNED: tuned, **partner.predict_proba(partner.inputs(texts, structured))}
    known = targets["severity"] != IGNORE
    expected = fit_stack_weights(
        {m: answers["severity"][known] for m, answers in members.items()},
        targets["severity"][known],
    )
    assert partner.state.stack_weights["severity"] == expected
    assert partner.state.stack_weights["siu_referral"] == {TUNED: 1.0}
    assert partner.state.stack_weights["claim_type"][TUNED] < 0.5  # random answers weigh little
    for task, weights in partner.state.stack_weights.items():
        expected_served = stack({m: members[m][task] for m in weights}, weights)
        np.testing.assert_allclose(served[task], expected_served)


def test_one_thread_or_none_the_partner_answers_alike(fitted) -> None:
    """A pool's processes predict on one thread each, and a chunk may have no claims left."""
    _, test, features, _, counts, partner = fitted
    texts = [claim.description for claim in test.claims]
    inputs = partner.inputs(texts, features.transform(test.claims))
    one_thread = BoostedPartner(partner.state, partner.arrays, threads=1)
    for task, values in partner.predict_proba(inputs)[BOOSTED].items():
        np.testing.assert_array_equal(one_thread.predict_proba(inputs)[BOOSTED][task], values)
    empty = partner.predict_proba(partner.inputs([], features.transform([])))
    for member in (TEXT, BOOSTED):
        assert {task: values.shape for task, values in empty[member].items()} == {
            task: (0, count) for task, count in counts.items()
        }


def test_the_members_are_fitted_with_blas_on_one_thread(
    fitted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small dense fits run slower with more BLAS threads; the limit ends with the fit."""
    development, _, features, targets, counts, _ = fitted
    seen: list[set[int]] = []

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    def record_and_stop(*arguments) -> None:  # the linear member, the fit's last step
        seen.append(blas_threads())
        raise InterruptedError

    monkeypatch.setattr(partner_module, "_fit_linear", record_and_stop)
    with threadpool_limits(2, user_api="blas"):  # the caller's setting, whatever the machine
        with pytest.raises(InterruptedError):
            fit_partner(
                development.claims, features.transform(development.claims), targets, counts, 0
            )
        after = blas_threads()
    assert seen == [{1}]
    assert after == {2}


def test_a_partner_fitted_beside_in_another_process_answers_as_one_fitted_here(fitted) -> None:
    development, test, features, targets, counts, partner = fitted
    structured = features.transform(development.claims)
    beside = PartnerFit(development.claims, structured, targets, counts, 0, beside=True)
    texts = [claim.description for claim in test.claims]
    inputs = partner.inputs(texts, features.transform(test.claims))
    answers = beside.result().predict_proba(inputs)[BOOSTED]
    for task, values in partner.predict_proba(inputs)[BOOSTED].items():
        np.testing.assert_allclose(answers[task], values, atol=1e-6)


def test_a_checkpoint_records_its_stack_and_serves_it(
    trained_checkpoint: Path, claims_csv: Path
) -> None:
    manifest = json.loads((trained_checkpoint / "manifest.json").read_text())
    notes = {k: v for k, v in manifest["selection"].items() if k.startswith("stack.")}
    assert set(notes) == {f"stack.{task.name}" for task in load_config().tasks}
    predictor = load_checkpoint(trained_checkpoint).predictor
    assert predictor.preparer.partner is not None
    card = (trained_checkpoint / "MODEL_CARD.md").read_text()
    for task, weights in predictor.preparer.partner.state.stack_weights.items():
        assert set(weights) == {TUNED, TEXT, BOOSTED, LINEAR}
        assert f"{TUNED} {weights[TUNED]:.2f}" in notes[f"stack.{task}"]
        # the note is the training-split fit's; the served refit chose its own from the grid
        assert "the linear member's C " in notes[f"stack.{task}"]
        assert predictor.preparer.partner.state.linear_strengths[task] in LINEAR_STRENGTHS
        assert f"| {task} | {weights[TUNED]:.2f} |" in card
    claims = frame_to_claims(
        pd.read_csv(claims_csv).head(20),
        load_config(),
        source="t",
    ).claims
    members = predictor.member_probabilities(claims)
    served = predictor.predict_proba(claims)
    for task, weights in predictor.preparer.partner.state.stack_weights.items():
        expected = stack({m: members[m][task] for m in weights}, weights)
        np.testing.assert_allclose(served[task], expected, atol=1e-6)


def test_a_partner_listed_without_its_arrays_does_not_load(
    trained_checkpoint: Path, tmp_path: Path
) -> None:
    """The manifest must vouch for every file read: arrays it does not list are never loaded."""
    copy = tmp_path / "copy"
    shutil.copytree(trained_checkpoint, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"] = [f for f in manifest["files"] if f["path"] != PARTNER_ARRAYS]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError) as error:  # there, but not vouched for
        load_checkpoint(copy)
    assert error.value.code is FallbackCode.manifest_invalid
    assert PARTNER_ARRAYS in error.value.detail
    (copy / PARTNER_ARRAYS).unlink()
    with pytest.raises(CheckpointError) as error:  # neither there nor listed
        load_checkpoint(copy)
    assert error.value.code is FallbackCode.load_failed and PARTNER_ARRAYS in error.value.detail


def test_without_the_partner_the_tuned_model_answers_alone(
    claims_csv: Path, tmp_path: Path
) -> None:
    config = quick_config(strategy=Strategy.head, max_steps=2, boosted_partner=False)
    fitted = SpecialistTrainer(config, show_progress=False).fit(claims_csv)
    assert fitted.partner is None
    manifest = fitted.save(tmp_path / "m")
    assert manifest.selection["partner"].startswith("not fitted: boosted_partner is off")
    assert not (tmp_path / "m" / PARTNER).exists()
    assert load_checkpoint(tmp_path / "m").predictor.preparer.partner is None


def _text_model_of(rows, targets_of_rows, counts) -> TfidfLogisticBaseline:
    return TfidfLogisticBaseline().fit(rows.claims, targets_of_rows, counts)


def test_the_served_partner_is_fitted_again_on_training_and_validation_claims(
    fitted, trained_checkpoint: Path
) -> None:
    """The weights are chosen on the validation answers of members that never saw those
    claims; the members then served learned from them too, as the baselines they compete
    with learn from every development claim."""
    development, test, _, targets, counts, _ = fitted
    manifest = json.loads((trained_checkpoint / "manifest.json").read_text())
    assert manifest["selection"]["partner"].startswith("fitted again on the training and valid")
    served = load_checkpoint(trained_checkpoint).predictor.preparer.partner
    assert served is not None
    texts = [claim.description for claim in test.claims]
    on_development = _text_model_of(development, targets, counts).predict_proba(test.claims)
    np.testing.assert_allclose(
        served.text.scores(texts), np.hstack(list(on_development.values())), atol=1e-5
    )


def test_without_the_refit_the_members_fitted_on_the_training_split_serve(
    fitted, claims_csv: Path
) -> None:
    development, test, _, targets, counts, _ = fitted
    config = quick_config(strategy=Strategy.head, max_steps=2, partner_refit=False)
    specialist = SpecialistTrainer(config, show_progress=False).fit(claims_csv)
    assert specialist.selection["partner"] == "fitted on the training split"
    train, _ = split_validation(development, config.training.validation_fraction)
    kept = np.isin([c.claim_id for c in development.claims], [c.claim_id for c in train.claims])
    on_train = _text_model_of(train, {t: v[kept] for t, v in targets.items()}, counts)
    assert specialist.partner is not None
    np.testing.assert_allclose(
        specialist.partner.text.scores([claim.description for claim in test.claims]),
        np.hstack(list(on_train.predict_proba(test.claims).values())),
        atol=1e-5,
    )
