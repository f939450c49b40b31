"""Frozen features from every stage of a backbone on ELPV: does a head on more than the last layer help?

For each `BACKBONE:SIZE` given, runs the frozen ImageNet backbone once over the 4 flips (views 0,
2, 4, 6 of `harness.symmetry.view`) of the train, validation and test images of ELPV's 4-class
task at SIZE x SIZE, and keeps the global average and the global max of the output of each block
from block 3 up and of the head conv (`top_relu`). Several joined by `+`
(`efficientnet_lite0:224+efficientnet_lite2:300`) give one set of features, theirs side by side.
It then trains heads on those cached features, each on the 4 flips of the training images with
early stopping on validation loss (view 0):

- `last layer, linear`: the average of `top_relu` and one softmax layer (the harness's
  feature-extraction head, here trained on the flips);
- `every stage, linear`: the average and max of every stage, concatenated, one softmax layer;
- `every stage, 256 hidden`: the same with one hidden ReLU layer of 256.

`--contrast clahe` (scikit-image's adaptive histogram equalisation, clip limit 0.01) or
`--contrast standardise` (each image to mean 127 and standard deviation 50) changes the images
before the pass; the default, `none`, keeps them as the harness reads them.

It prints each head's 4-class accuracy and its binary accuracy (defective when P(2/3) + P(1) > 0.5)
on validation and test, on view 0 and averaged over the flips, with the 95% Wilson interval of
the binary test figure, for seeds 0 and 1. Last, it scores the `every stage, 256 hidden` heads
together (their mean P(defective), view 0) and counts the test images that all of them get
wrong, by the experts' defect probability.

    python benchmarks/elpv_taps.py efficientnet_lite0:224 efficientnet_lite2:300

The features are cached in `--cache-dir` (one `.npz` per backbone, size and contrast); the pass
took 2 min for Lite0 at 224 and 5 min for Lite2 at 300 on 2 cores (AMD EPYC, 2026-12-07).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import runpy
import tempfile
from pathlib import Path

import numpy as np

from harness.data.datasets.elpv_labels import FIRST_DEFECTIVE_LABEL, LABEL_NAMES
from harness.stats import wilson_interval

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FLIPS = (0, 2, 4, 6)
SPLITS = ("train", "validation", "test")
HEADS = {"last layer, linear": (False, 0), "every stage, linear": (True, 0), "every stage, 256 hidden": (True, 256)}
SEEDS = (0, 1)
CONTRASTS = ("none", "clahe", "standardise")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "backbones", nargs="+", help="BACKBONE:SIZE, e.g. efficientnet_lite2:300; several joined by + share one head"
    )
    parser.add_argument(
        "--spec", type=Path, default=Path("specs/elpv.py"), help="Spec file with the 4-class ELPV experiment"
    )
    parser.add_argument("--cache-dir", type=Path, default=Path("reports/elpv_taps"), help="Where the features are kept")
    parser.add_argument("--contrast", choices=CONTRASTS, default="none", help="Contrast change before the pass")
    args = parser.parse_args()

    defect, fine = [], None
    for item in args.backbones:
        parts = [part.partition(":") for part in item.split("+")]
        features = _joined(
            [_features(name, int(size), args.contrast, args.spec, args.cache_dir) for name, _, size in parts]
        )
        fine = features["test/labels"]
        label = " + ".join(f"{name} at {size}" for name, _, size in parts)
        if args.contrast != "none":
            label += f", {args.contrast}"
        for head, (every_stage, hidden) in HEADS.items():
            for seed in SEEDS:
                probabilities = _fit(features, every_stage, hidden, seed)
                print(f"{label}, {head}, seed {seed}: {_scores(probabilities, features)}", flush=True)
                if hidden:
                    defect.append(_defect_probability(probabilities["test"][0]))
    assert fine is not None
    truth = fine >= FIRST_DEFECTIVE_LABEL
    together = np.mean((np.mean(defect, axis=0) > 0.5) == truth)
    print(
        f"the {len(defect)} 'every stage, 256 hidden' heads together (mean P(defective), view 0): test binary {together:.3f}"
    )
    wrong = (np.array(defect) > 0.5) != truth
    in_all = np.all(wrong, axis=0)
    by_label = ", ".join(
        f"{np.sum(in_all & (fine == c))} of {np.sum(fine == c)} at {n}" for c, n in enumerate(LABEL_NAMES)
    )
    print(f"test images wrong in all {len(defect)} 'every stage, 256 hidden' heads: {in_all.sum()} ({by_label})")


def _joined(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Several backbones' features as one set: each layer named `{i}.{layer}` after its backbone's place."""
    if len(parts) == 1:
        return parts[0]
    joined = {f"{s}/labels": parts[0][f"{s}/labels"] for s in SPLITS}
    for i, part in enumerate(parts):
        for key, value in part.items():
            split, rest = key.split("/", 1)
            if rest == "labels":
                assert np.array_equal(value, joined[key]), "the backbones saw other images"
            else:
                view, layer = rest.split("/", 1)
                joined[f"{split}/{view}/{i}.{layer}"] = value
    return joined


def _contrasted(images: np.ndarray, contrast: str) -> np.ndarray:
    """`images` (RGB 0..255 of a gray cell) with the contrast change `contrast` (see CONTRASTS)."""
    if contrast == "clahe":
        from skimage import exposure

        gray = [exposure.equalize_adapthist(image[..., 0] / 255.0, clip_limit=0.01) for image in images]
        return np.repeat(np.stack(gray)[..., None] * 255.0, 3, axis=-1).astype(np.float32)
    if contrast == "standardise":
        mean = images.mean(axis=(1, 2, 3), keepdims=True)
        std = images.std(axis=(1, 2, 3), keepdims=True) + 1e-6
        return np.clip((images - mean) / std * 50 + 127, 0, 255).astype(np.float32)
    return images


def _features(name: str, size: int, contrast: str, spec_file: Path, cache_dir: Path) -> dict[str, np.ndarray]:
    """`{split}/{view}/{layer}/{avg|max}` pooled features and `{split}/labels`, computed once."""
    path = cache_dir / (f"{name}_{size}.npz" if contrast == "none" else f"{name}_{size}_{contrast}.npz")
    if path.exists():
        with np.load(path) as cached:
            return dict(cached)
    import keras

    import harness
    from harness import batching, spec, symmetry
    from harness.data import loading

    with spec.collecting() as found:
        runpy.run_path(str(spec_file))
    severity = next(e for e in found if e.dataset.label_key == "label" and e.backbone.weights)
    data = loading.load(dataclasses.replace(severity.dataset, image_size=(size, size)))
    backbone = harness.load_backbone(name, weights="imagenet", input_shape=(size, size, 3))
    last_of_block: dict[int, str] = {}
    for layer in backbone.layers:
        if match := re.match(r"block_(\d+)_", layer.name):
            last_of_block[int(match.group(1))] = layer.name
    layers = [last_of_block[b] for b in sorted(last_of_block) if b >= 3] + ["top_relu"]
    pooled = []
    for layer in layers:
        output = backbone.get_layer(layer).output
        pooled += [keras.layers.GlobalAveragePooling2D()(output), keras.layers.GlobalMaxPooling2D()(output)]
    extractor = keras.Model(backbone.input, pooled)
    features: dict[str, np.ndarray] = {}
    for split in SPLITS:
        images = np.concatenate(list(batching.image_batches(data.split(split)).as_numpy_iterator()))
        images = _contrasted(images, contrast)
        for k in FLIPS:
            outputs = extractor.predict(symmetry.view(images, k), batch_size=batching.PREDICT_BATCH, verbose=0)
            for i, layer in enumerate(layers):
                features[f"{split}/{k}/{layer}/avg"] = outputs[2 * i]
                features[f"{split}/{k}/{layer}/max"] = outputs[2 * i + 1]
        features[f"{split}/labels"] = data.labels(split)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache_dir, suffix=".npz", delete=False) as partial:
        np.savez(partial, **features)  # type: ignore[arg-type]  # numpy's stubs take the first keyword for allow_pickle
    os.replace(partial.name, path)  # a run cut short leaves no half-written cache entry
    return features


def _fit(features: dict[str, np.ndarray], every_stage: bool, hidden: int, seed: int) -> dict[str, np.ndarray]:
    """Trains one head; returns the class probabilities of each held-out split, shape (views, images, 4)."""
    import keras

    keys = sorted({k.split("/", 2)[2] for k in features if k.startswith("train/0/")})
    keys = keys if every_stage else [key for key in keys if key.endswith("top_relu/avg")]
    inputs = {
        s: np.stack([np.concatenate([features[f"{s}/{k}/{key}"] for key in keys], axis=1) for k in FLIPS])
        for s in SPLITS
    }
    train = inputs["train"].reshape(-1, inputs["train"].shape[-1])
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-6
    inputs = {s: (x - mean) / std for s, x in inputs.items()}
    keras.utils.set_random_seed(seed)
    regulariser = keras.regularizers.L2(1e-3)
    layers = [keras.Input((train.shape[-1],)), keras.layers.Dropout(0.3)]
    if hidden:
        layers += [
            keras.layers.Dense(hidden, activation="relu", kernel_regularizer=regulariser),
            keras.layers.Dropout(0.3),
        ]
    head = keras.Sequential(
        [*layers, keras.layers.Dense(len(LABEL_NAMES), activation="softmax", kernel_regularizer=regulariser)]
    )
    head.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    head.fit(
        inputs["train"].reshape(train.shape),
        np.tile(features["train/labels"], len(FLIPS)),
        validation_data=(inputs["validation"][0], features["validation/labels"]),
        epochs=150,
        batch_size=64,
        verbose=0,
        callbacks=[keras.callbacks.EarlyStopping("val_loss", patience=15, restore_best_weights=True)],
    )
    return {s: np.stack([head.predict(x, verbose=0) for x in inputs[s]]) for s in ("validation", "test")}


def _defect_probability(probabilities: np.ndarray) -> np.ndarray:
    """P(defective) = P(2/3) + P(1) from the 4-class probabilities (last axis)."""
    return probabilities[..., FIRST_DEFECTIVE_LABEL:].sum(axis=-1)


def _scores(probabilities: dict[str, np.ndarray], features: dict[str, np.ndarray]) -> str:
    """4-class and binary accuracy on validation and test, view 0 / mean over the flips."""
    parts = []
    for split, short in (("validation", "val"), ("test", "test")):
        labels = features[f"{split}/labels"]
        views = {"view 0": probabilities[split][0], "flips": probabilities[split].mean(axis=0)}
        four = "/".join(f"{np.mean(p.argmax(axis=1) == labels):.3f}" for p in views.values())
        binary = [(_defect_probability(p) > 0.5) == (labels >= FIRST_DEFECTIVE_LABEL) for p in views.values()]
        parts.append(f"{short} 4-class {four}, binary {'/'.join(f'{np.mean(b):.3f}' for b in binary)}")
    low, high = wilson_interval(int(binary[0].sum()), len(binary[0]))
    return "; ".join(parts) + f" (test binary, view 0: {binary[0].sum()} of {len(binary[0])}, {low:.3f}-{high:.3f})"


if __name__ == "__main__":
    main()
