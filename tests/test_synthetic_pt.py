"""Portuguese synthetic claims: the same hidden stories and labels as English, told in Brazilian
or European Portuguese with their own money, and a mixed file of both languages."""

from __future__ import annotations

import random
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from typer.testing import CliRunner

from claims.cli.base_models import register_commands
from claims.cli.main import app
from claims.data.narrative_writing import Story
from claims.data.synthetic import CURRENCIES, USD_TO, generate_claims
from claims.data.synthetic_pt import CURRENCY, PortugueseWriter, vocabulary
from claims.data.synthetic_pt import USD_TO as LOCAL_RATE
from claims.domain.config import default_config_path, load_config

register_commands(app)  # with a second command, `generate` is named on the command line

N, SEED = 1500, 7
STORY = [
    "claim_id",
    "loss_date",
    "reported_date",
    "line_of_business",
    "policy_id",
    "policy_start_date",
    "claimant_age",
    "prior_claims",
    "channel",
    "region",
    "claim_type",
    "severity",
    "siu_referral",
]
PORTUGUESE = re.compile(r"\b(?:não|que|com|uma|foi|do|da|no|na|seg\.|danos|sem)\b", re.I)
ENGLISH = re.compile(r"\b(?:the|was|and|my|with|no inj|clmt)\b", re.I)


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return {language: generate_claims(N, SEED, language) for language in ("en", "pt", "mixed")}


def test_the_same_stories_and_labels_in_every_language(frames: dict[str, pd.DataFrame]) -> None:
    english = frames["en"]
    for language in ("pt", "mixed"):
        pd.testing.assert_frame_equal(frames[language][STORY], english[STORY])
    assert not frames["pt"]["description"].equals(english["description"])


def test_portuguese_estimates_are_the_same_loss_in_reais_or_euros(
    frames: dict[str, pd.DataFrame],
) -> None:
    english, portuguese = frames["en"], frames["pt"]
    assert set(portuguese["currency"]) == {"BRL", "EUR"}
    assert 0.45 < (portuguese["currency"] == "BRL").mean() < 0.75
    usd = english["initial_estimate"] / english["currency"].map(
        dict(zip(CURRENCIES, USD_TO, strict=True))
    )
    expected = usd * portuguese["currency"].map(LOCAL_RATE)
    assert np.allclose(portuguese["initial_estimate"], expected.round(2), atol=0.011)
    assert ((portuguese["initial_estimate"] == 0) == (english["initial_estimate"] == 0)).all()


def test_portuguese_narratives_are_portuguese_and_complete(
    frames: dict[str, pd.DataFrame],
) -> None:
    texts = frames["pt"]["description"]
    assert texts.str.contains(PORTUGUESE).mean() > 0.8
    assert texts.str.contains(ENGLISH).mean() < 0.02
    assert not texts.str.contains(r"[{}]").any()
    assert texts.str.len().between(1, 1500).all()
    codes = texts[texts.str.isupper()]  # the upper-case register is there too
    assert len(codes) > N * 0.1


def test_each_locale_speaks_its_own_portuguese(frames: dict[str, pd.DataFrame]) -> None:
    portuguese = frames["pt"]
    brazil = portuguese.loc[portuguese["currency"] == CURRENCY["pt-BR"], "description"]
    portugal = portuguese.loc[portuguese["currency"] == CURRENCY["pt-PT"], "description"]
    for word in ("celular", "ônibus", "caminhão", "banheiro", "BR-116"):
        assert not portugal.str.contains(word).any(), word
    for word in ("telemóvel", "autocarro", "camião", "casa de banho", "IC19"):
        assert not brazil.str.contains(word).any(), word
    assert brazil.str.contains("celular|banheiro|Av\\. Paulista|BO").any()
    assert portugal.str.contains("telemóvel|casa de banho|rotunda|PSP|GNR").any()


def test_a_mixed_file_holds_both_languages(frames: dict[str, pd.DataFrame]) -> None:
    mixed = frames["mixed"]
    portuguese = mixed["currency"].isin(["BRL", "EUR"]) & ~mixed["currency"].eq("EUR")
    assert 0.2 < portuguese.mean() < 0.45  # Brazilian claims; euros are both European voices
    english = mixed.loc[mixed["currency"].isin(["USD", "GBP", "CAD"]), "description"]
    assert english.str.contains(ENGLISH).mean() > 0.5
    assert mixed.loc[portuguese, "description"].str.contains(PORTUGUESE).mean() > 0.8


def test_the_portuguese_text_carries_the_claim_type_as_the_english_does(
    frames: dict[str, pd.DataFrame],
) -> None:
    """The labels stay learnable from the Portuguese words about as well as from the English."""

    def macro_f1(frame: pd.DataFrame) -> float:
        train, test = frame.iloc[:1000], frame.iloc[1000:]
        vectoriser = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        model = LogisticRegression(max_iter=2000, C=5.0)
        model.fit(vectoriser.fit_transform(train["description"]), train["claim_type"])
        predicted = model.predict(vectoriser.transform(test["description"]))
        return float(f1_score(test["claim_type"], predicted, average="macro"))

    english, portuguese = macro_f1(frames["en"]), macro_f1(frames["pt"])
    assert portuguese > 0.5
    assert abs(portuguese - english) < 0.15, (english, portuguese)


def test_the_same_seed_gives_the_same_file() -> None:
    pd.testing.assert_frame_equal(generate_claims(50, 3, "pt"), generate_claims(50, 3, "pt"))
    assert not generate_claims(50, 3, "pt")["description"].equals(
        generate_claims(50, 4, "pt")["description"]
    )


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="language"):
        generate_claims(5, 0, "fr")


def test_every_template_in_the_tables_fills_in_both_voices() -> None:
    """Each string of the word tables, with each variant's slots: no unknown slot, none left."""
    writer = PortugueseWriter(random.Random(0))

    def strings(value: object) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [s for item in value.values() for s in strings(item)]
        if isinstance(value, list):
            return [s for item in value for s in strings(item)]
        return []

    templates = strings({k: v for k, v in vocabulary().items() if k != "slots"})
    assert len(templates) > 500
    for locale in ("pt-BR", "pt-PT"):
        story = Story("collision", "claimant", 0, 0, False, False, date(2024, 3, 14))
        writer.narrative(locale, story)
        for template in templates:
            filled = writer.fill(template)
            assert "{" not in filled and "}" not in filled, template


def test_claims_generate_writes_portuguese(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "pt.csv"
    result = runner.invoke(app, ["generate", "--out", str(out), "--n", "40", "--language", "pt"])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out)
    assert len(written) == 40 and set(written["currency"]) <= {"BRL", "EUR"}
    refused = runner.invoke(app, ["generate", "--out", str(out), "--language", "fr"])
    assert refused.exit_code == 2 and "--language" in refused.output


def test_the_packaged_portuguese_config_describes_every_label_in_portuguese() -> None:
    english = load_config(default_config_path())
    portuguese = load_config(default_config_path().with_name("synthetic_pt.toml"))
    assert portuguese.base_model == "multilingual-e5-small"
    assert [t.name for t in portuguese.tasks] == [t.name for t in english.tasks]
    for ours, theirs in zip(portuguese.tasks, english.tasks, strict=True):
        assert set(ours.labels) == set(theirs.labels)
        for label, description in ours.labels.items():
            assert description != theirs.labels[label]
            assert re.search(r"\b(?:um|uma|ou|com|sem|de)\b", description), label
