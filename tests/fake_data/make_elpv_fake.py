"""Writes the fake ELPV files under `tests/fake_data/elpv/` (run once; the output is committed).

32 flat-gray 300x300 8-bit grayscale PNGs and a `labels.csv` in ELPV's exact format, covering
every (defect probability, cell type) stratum with 3 to 6 cells so that train, validation and
test all hold examples. Rows are written in a shuffled order, as a check that the split does
not depend on it.

    python tests/fake_data/make_elpv_fake.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# (defect probability as written by ELPV, cell type, number of cells)
STRATA = [
    ("0.0", "mono", 5),
    ("0.0", "poly", 6),
    ("0.3333333333333333", "mono", 3),
    ("0.3333333333333333", "poly", 4),
    ("0.6666666666666666", "mono", 3),
    ("0.6666666666666666", "poly", 3),
    ("1.0", "mono", 4),
    ("1.0", "poly", 4),
]


def main() -> None:
    root = Path(__file__).resolve().parent / "elpv"
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = [(probability, cell_type) for probability, cell_type, count in STRATA for _ in range(count)]
    order = np.random.default_rng(0).permutation(len(rows))
    lines = []
    for number, index in enumerate(order, start=1):
        probability, cell_type = rows[index]
        path = f"images/cell{number:04d}.png"
        gray = np.full((300, 300), 40 + 6 * number, dtype=np.uint8)
        Image.fromarray(gray).save(root / path, optimize=True)
        lines.append(f"{path}  {probability:<20}{cell_type}\n")
    (root / "labels.csv").write_text("".join(lines))


if __name__ == "__main__":
    main()
