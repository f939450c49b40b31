"""Test-time dihedral views on the exported ELPV models: does averaging symmetric views help?

For each ELPV experiment exported by `pytest specs/ --export-dir DIR` (`DIR/<name>/model.keras`),
predicts the test split in each of the 8 symmetries of the square (`harness.symmetry.view`) and
prints the test accuracy of view 0 alone (what the harness scores), of the mean probability over
the identity and the three flips (views 0, 2, 4, 6), and over all 8 views. A 4-class experiment
is also scored as binary (defective when the probability of 2/3 or 1 is above one half), the way
the binary label is defined.

    pytest specs/ -k elpv --export-dir reports/exports
    python benchmarks/elpv_views.py reports/exports

`--spec FILE` reads the experiments from another spec file (a variant of specs/elpv.py). Given
several export folders (other seeds, say) or several models, it also scores them together: the
binary accuracy of their mean defect probability (a binary model's P(defective), a 4-class
model's P(2/3) + P(1)), and how many test images 0, 1, ... of them get wrong, by the experts'
defect probability.

Each model is also scored with its decision threshold on P(defective) moved from one half to
the one that maximises validation accuracy, and, as a bound on what any threshold could do, to
the one that maximises test accuracy.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import runpy
from pathlib import Path

import numpy as np

from harness.data.datasets.elpv_labels import DEFECTIVE_NAMES, FIRST_DEFECTIVE_LABEL, LABEL_NAMES

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

AVERAGES = {"view 0": [0], "flips (0, 2, 4, 6)": [0, 2, 4, 6], "all 8": list(range(8))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exports", type=Path, nargs="+", help="The --export-dir of a `pytest specs/` run")
    parser.add_argument("--spec", type=Path, default=Path("specs/elpv.py"), help="The spec file exported")
    args = parser.parse_args()

    import keras

    from harness import batching, spec, symmetry
    from harness.data import loading

    with spec.collecting() as found:
        runpy.run_path(str(args.spec))
    pretrained = [e for e in found if e.backbone.weights]
    scored = [(d, e) for d in args.exports for e in pretrained if (d / e.name / "model.keras").exists()]
    if not scored:
        raise SystemExit(f"{', '.join(map(str, args.exports))}: no export of a pretrained experiment of {args.spec}")
    loaded: dict[spec.Dataset, dict[str, tuple[np.ndarray, np.ndarray]]] = {}

    def held_out(dataset: spec.Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The images and labels of the validation and test splits of `dataset`, loaded once."""
        if dataset not in loaded:
            data = loading.load(dataset)
            loaded[dataset] = {
                name: (
                    np.concatenate(list(batching.image_batches(data.split(name)).as_numpy_iterator())),
                    data.labels(name),
                )
                for name in ("validation", "test")
            }
        return loaded[dataset]

    defect_probabilities = []
    for exports, experiment in scored:
        splits = held_out(experiment.dataset)
        (images, labels), (val_images, val_labels) = splits["test"], splits["validation"]
        model = keras.saving.load_model(exports / experiment.name / "model.keras")
        per_view = np.stack(
            [model.predict(symmetry.view(images, k), batch_size=batching.PREDICT_BATCH, verbose=0) for k in range(8)]
        )
        classes = per_view.shape[-1]
        defect = _defect_probability(per_view)
        test_truth = _is_defective(labels, classes)
        alone = ", ".join(f"{np.mean(p.argmax(1) == labels):.3f}" for p in per_view)
        print(f"{exports / experiment.name}: test accuracy of each view alone {alone}")
        for average, views in AVERAGES.items():
            probabilities = per_view[views].mean(axis=0)
            line = f"  {average}: {np.mean(probabilities.argmax(1) == labels):.4f}"
            if classes == len(LABEL_NAMES):
                line += f", scored as binary {np.mean((defect[views].mean(axis=0) > 0.5) == test_truth):.4f}"
            print(line)
        val_defect = _defect_probability(model.predict(val_images, batch_size=batching.PREDICT_BATCH, verbose=0))
        print("  " + _thresholds(val_defect, _is_defective(val_labels, classes), defect[0], test_truth))
        defect_probabilities.append(defect)
    if len(scored) > 1:
        # The experts' defect probability of each test image: the 4-class label of the same split
        # (a 4-class experiment's own data set, so loaded once).
        _, fine = held_out(dataclasses.replace(scored[0][1].dataset, label_key="label"))["test"]
        _together(np.stack(defect_probabilities), fine)


def _first_defective(classes: int) -> int:
    """The first defective label of a binary or a 4-class experiment (`classes` outputs)."""
    return 1 if classes == len(DEFECTIVE_NAMES) else FIRST_DEFECTIVE_LABEL


def _defect_probability(probabilities: np.ndarray) -> np.ndarray:
    """P(defective) from a binary model's or a 4-class model's class probabilities (last axis)."""
    return probabilities[..., _first_defective(probabilities.shape[-1]) :].sum(axis=-1)


def _is_defective(labels: np.ndarray, classes: int) -> np.ndarray:
    """The binary truth of the labels of a binary or a 4-class experiment."""
    return labels >= _first_defective(classes)


def _thresholds(val_defect: np.ndarray, val_truth: np.ndarray, test_defect: np.ndarray, test_truth: np.ndarray) -> str:
    """Binary test accuracy at the threshold on P(defective) best on validation, and at the best one on test."""
    candidates = np.round(np.arange(0.05, 0.951, 0.01), 2)

    def accuracy(defect: np.ndarray, truth: np.ndarray) -> np.ndarray:
        return np.mean((defect[None, :] > candidates[:, None]) == truth[None, :], axis=1)

    val, test = accuracy(val_defect, val_truth), accuracy(test_defect, test_truth)
    chosen, best = int(np.argmax(val)), int(np.argmax(test))
    return (
        f"threshold on P(defective) best on validation: {candidates[chosen]:.2f} (val {val[chosen]:.4f}), "
        f"test {test[chosen]:.4f}; best on test: {test[best]:.4f} at {candidates[best]:.2f}"
    )


def _together(defect_probability: np.ndarray, fine: np.ndarray) -> None:
    """Scores models together: `defect_probability` is (models, views, images), `fine` the 4-class labels."""
    defective = _is_defective(fine, len(LABEL_NAMES))
    models = len(defect_probability)
    mean = defect_probability.mean(axis=0)
    print(f"the {models} models together (mean defect probability), scored as binary:")
    for average, views in AVERAGES.items():
        print(f"  {average}: {np.mean((mean[views].mean(axis=0) > 0.5) == defective):.4f}")
    wrong = ((defect_probability[:, 0] > 0.5) != defective).sum(axis=0)
    print(
        "  test images (view 0) wrong in 0, 1, ... of them: "
        + ", ".join(str(np.sum(wrong == k)) for k in range(models + 1))
    )
    by_label = ", ".join(
        f"{np.sum((wrong == models) & (fine == c))} of {np.sum(fine == c)} at {name}"
        for c, name in enumerate(LABEL_NAMES)
    )
    print(f"  wrong in all {models}, by defect probability: {by_label}")


if __name__ == "__main__":
    main()
