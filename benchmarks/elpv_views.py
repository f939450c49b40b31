"""Test-time dihedral views on the exported ELPV models: does averaging symmetric views help?

For each ELPV experiment exported by `pytest specs/ --export-dir DIR` (`DIR/<name>/model.keras`),
predicts the test split in each of the 8 symmetries of the square (`harness.symmetry.view`) and
prints the test accuracy of view 0 alone (what the harness scores), of the mean probability over
the identity and the three flips (views 0, 2, 4, 6), and over all 8 views. A 4-class experiment
is also scored as binary (defective when the probability of 2/3 or 1 is above one half), the way
the binary label is defined.

    pytest specs/ -k elpv --export-dir reports/exports
    python benchmarks/elpv_views.py reports/exports

`--spec FILE` reads the experiments from another spec file (a variant of specs/elpv.py).
"""

from __future__ import annotations

import argparse
import os
import runpy
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

AVERAGES = {"view 0": [0], "flips (0, 2, 4, 6)": [0, 2, 4, 6], "all 8": list(range(8))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exports", type=Path, help="The --export-dir of a `pytest specs/` run")
    parser.add_argument("--spec", type=Path, default=Path("specs/elpv.py"), help="The spec file exported")
    args = parser.parse_args()

    import keras
    import numpy as np

    from harness import batching, spec, symmetry
    from harness.data import loading
    from harness.data.datasets.elpv_labels import FIRST_DEFECTIVE_LABEL

    with spec.collecting() as found:
        runpy.run_path(str(args.spec))
    scored = [e for e in found if (args.exports / e.name / "model.keras").exists() and e.backbone.weights]
    if not scored:
        raise SystemExit(f"{args.exports} holds no export of a pretrained experiment of {args.spec}")
    for experiment in scored:
        data = loading.load(experiment.dataset)
        images = np.concatenate(list(batching.image_batches(data.split("test")).as_numpy_iterator()))
        labels = data.labels("test")
        model = keras.saving.load_model(args.exports / experiment.name / "model.keras")
        per_view = np.stack(
            [model.predict(symmetry.view(images, k), batch_size=batching.PREDICT_BATCH, verbose=0) for k in range(8)]
        )
        alone = ", ".join(f"{np.mean(p.argmax(1) == labels):.3f}" for p in per_view)
        print(f"{experiment.name}: test accuracy of each view alone {alone}")
        for average, views in AVERAGES.items():
            probabilities = per_view[views].mean(axis=0)
            line = f"  {average}: {np.mean(probabilities.argmax(1) == labels):.4f}"
            if probabilities.shape[1] == 4:
                defective = probabilities[:, FIRST_DEFECTIVE_LABEL:].sum(axis=1) > 0.5
                line += f", scored as binary {np.mean(defective == (labels >= FIRST_DEFECTIVE_LABEL)):.4f}"
            print(line)


if __name__ == "__main__":
    main()
