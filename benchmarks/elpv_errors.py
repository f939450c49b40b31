"""Where the ELPV experiments err: test accuracy per expert defect probability (0, 1/3, 2/3, 1).

Reads the test predictions recorded in a baselines file (`--update-baselines` writes them) and
the test split of the `elpv` TFDS builder, and prints, for each ELPV experiment recorded, how
many cells of each defect probability it classifies right. A 4-class experiment is also scored
as a binary one (defective when it predicts 2/3 or 1), the way the binary label is defined.

    python benchmarks/elpv_errors.py                                # specs/baselines.json
    python benchmarks/elpv_errors.py --baselines other/baselines.json
"""

from __future__ import annotations

import argparse
import json
import os
import runpy

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baselines", default="specs/baselines.json", help="Baselines file to read")
    args = parser.parse_args()

    import numpy as np
    import tensorflow_datasets as tfds

    from harness import gate, locks, spec
    from harness.data.datasets import elpv
    from harness.data.datasets.elpv_labels import FIRST_DEFECTIVE_LABEL, LABEL_NAMES

    with open(args.baselines, encoding="utf-8") as file:
        recorded = json.load(file)["experiments"]
    datasets = {}  # experiment name -> its ELPV data set (binary or 4-class), from the spec files recorded
    for spec_file in sorted({entry["spec"] for entry in recorded.values()}):
        with spec.collecting() as found:
            runpy.run_path(spec_file)
        datasets.update(
            {
                e.name: e.dataset
                for e in found
                if getattr(e.dataset, "name", "") == elpv.Elpv.name and e.dataset.label_key in ("defective", "label")
            }
        )
    if not datasets:
        raise SystemExit(f"{args.baselines} records no ELPV experiment of the spec files it names")

    # The data directory of the specs' data set, prepared under the lock `pytest specs/` holds.
    builder = tfds.builder(elpv.Elpv.name, data_dir=next(iter(datasets.values())).data_dir)
    with locks.held(f"tfds-{builder.data_dir}"):
        builder.download_and_prepare()
    test = list(tfds.as_numpy(builder.as_dataset(split="test")))
    label = np.array([example["label"] for example in test])
    defective = np.array([example["defective"] for example in test])

    for name, entry in sorted(recorded.items()):
        predictions = entry.get("predictions", {}).get("test")
        if name not in datasets or predictions is None:
            continue
        predicted = np.array(gate.decode(predictions))
        binary = predicted if datasets[name].label_key == "defective" else predicted >= FIRST_DEFECTIVE_LABEL
        print(f"{name} (seed {entry.get('seed')}): binary test accuracy {np.mean(binary == defective):.4f}")
        for index, probability in enumerate(LABEL_NAMES):
            cells = label == index
            right = int(np.sum(binary[cells] == defective[cells]))
            print(f"  defect probability {probability}: {right}/{int(cells.sum())} right ({right / cells.sum():.3f})")


if __name__ == "__main__":
    main()
