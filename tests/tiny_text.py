"""A tiny keras-hub text encoder (a 3-layer BERT of a few thousand parameters) and tiny text data.

`preset_folder(root)` saves the encoder and its WordPiece tokenizer with keras-hub's own
`save_to_preset` into `root/tiny_bert` (once: later calls reuse it), which a spec names as
`keras_hub_backbone("<folder>")`, as a user names a local preset folder. The texts are short
"sentences" of words from two word lists: class 0 ("weather") and class 1 ("sport"), with
shared filler words, so that a few epochs learn them. Importing this module imports neither
TensorFlow nor keras-hub.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

WEATHER = ["rain", "sun", "cloud", "wind", "storm", "snow", "fog", "heat"]
SPORT = ["goal", "match", "team", "score", "coach", "league", "ball", "race"]
FILLER = ["the", "a", "of", "and", "today", "there", "was", "much", "in", "town"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCABULARY = [*SPECIAL, *WEATHER, *SPORT, *FILLER]
NUM_LAYERS = 3
FOLDER = "tiny_bert"


def preset_folder(root: Path) -> Path:
    """A keras-hub preset folder of the tiny BERT and its tokenizer under `root` (made once)."""
    folder = Path(root) / FOLDER
    if (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file():
        return folder
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCABULARY),
        num_layers=NUM_LAYERS,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=64,
    )
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCABULARY, lowercase=True)
    staging = folder.with_name(f".{FOLDER}-staging")
    staging.mkdir(parents=True, exist_ok=True)
    backbone.save_to_preset(str(staging))
    tokenizer.save_to_preset(str(staging))
    staging.rename(folder)
    return folder


def sentences(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """`n` texts of 3 to 12 words and their labels (0: weather words, 1: sport words, with filler)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    texts = []
    for label in labels:
        words = [*rng.choice(SPORT if label else WEATHER, rng.integers(2, 5)), *rng.choice(FILLER, rng.integers(1, 8))]
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts, labels


def make_data(test: bool = True) -> dict[str, tuple[list[str], np.ndarray]]:
    """96 training, 48 validation (and 48 test) texts, disjoint."""
    texts, labels = sentences(400, seed=1)
    seen: dict[str, int] = {}
    for text, label in zip(texts, labels, strict=True):
        seen.setdefault(text, int(label))  # identical texts would be shared by two splits
    unique = list(seen.items())
    cut = [96, 144, 192] if test else [96, 144]
    data = {"train": unique[: cut[0]], "validation": unique[cut[0] : cut[1]]}
    if test:
        data["test"] = unique[cut[1] : cut[2]]
    return {split: ([t for t, _ in rows], np.array([y for _, y in rows])) for split, rows in data.items()}


def write_folder(
    root: Path, texts: list[str], labels: np.ndarray, names: tuple[str, str] = ("weather", "sport")
) -> Path:
    """`texts` as a text folder: one sub-folder per class, one `.txt` file per text."""
    for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
        path = Path(root) / names[int(label)] / f"{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return Path(root)


def layer_names() -> list[str]:
    """The tiny encoder's layers as the freezing rules see them."""
    embeddings = ["token_embedding", "position_embedding", "segment_embedding", "embeddings_add"]
    return [*embeddings, "embeddings_layer_norm", "embeddings_dropout"] + [
        f"transformer_layer_{i}" for i in range(NUM_LAYERS)
    ]


def config(folder: Path) -> dict:
    return json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
