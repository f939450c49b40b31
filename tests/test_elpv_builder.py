"""Tests of the ELPV TFDS builder on the fake files in `tests/fake_data/elpv/`.

The fake files (made by `tests/fake_data/make_elpv_fake.py`) hold 32 cells in 8 strata of
3 to 6 cells; `split_sizes` gives train 19, validation 5 and test 8 of them.
"""

from __future__ import annotations

import collections
import random
from pathlib import Path
from typing import ClassVar

import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from harness.data.datasets import elpv  # noqa: E402  (imports TFDS)
from harness.data.datasets.elpv import Elpv, ElpvRecord  # noqa: E402

FAKE_DIR = Path(__file__).parent / "fake_data" / "elpv"


@pytest.mark.slow  # prepares the data set with TensorFlow
class ElpvBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """TFDS's own builder checks: registration, info, preparation, counts, disjoint splits."""

    DATASET_CLASS = Elpv
    EXAMPLE_DIR = str(FAKE_DIR)
    SPLITS: ClassVar[dict[str, int]] = {"train": 19, "validation": 5, "test": 8}


def _fake_records() -> list[ElpvRecord]:
    return elpv.parse_labels((FAKE_DIR / "labels.csv").read_text())


def _records(counts: dict[tuple[int, str], int]) -> list[ElpvRecord]:
    """Makes `counts[(label, cell_type)]` records per stratum with unique file names."""
    records = []
    for (label, cell_type), count in sorted(counts.items()):
        for _ in range(count):
            records.append(ElpvRecord(f"images/cell{len(records) + 1:04d}.png", label / 3, cell_type))
    return records


REAL_STRATA = {
    (0, "mono"): 588, (0, "poly"): 920, (1, "mono"): 117, (1, "poly"): 178,
    (2, "mono"): 56, (2, "poly"): 50, (3, "mono"): 313, (3, "poly"): 402,
}  # fmt: skip


def test_registered_name_is_elpv():
    assert Elpv.name == "elpv"
    assert "elpv" in tfds.list_builders(with_community_datasets=False)


def test_fake_labels_cover_every_stratum():
    strata = collections.Counter((r.label, r.cell_type) for r in _fake_records())
    assert set(strata) == {(label, t) for label in range(4) for t in elpv.CELL_TYPE_NAMES}


@pytest.mark.parametrize(
    "records",
    [_fake_records(), _records(REAL_STRATA)],
    ids=["fake", "real_strata"],
)
def test_splits_are_disjoint_and_cover_everything(records):
    splits = elpv.stratified_split(records)
    assert list(splits) == ["train", "validation", "test"]
    names = [{r.filename for r in split} for split in splits.values()]
    assert sum(len(n) for n in names) == len(records)
    assert set().union(*names) == {r.filename for r in records}


def test_split_sizes_round_half_up_per_stratum():
    assert elpv.split_sizes(0) == {"train": 0, "validation": 0, "test": 0}
    assert elpv.split_sizes(1) == {"train": 1, "validation": 0, "test": 0}
    assert elpv.split_sizes(4) == {"train": 2, "validation": 1, "test": 1}
    assert elpv.split_sizes(10) == {"train": 6, "validation": 2, "test": 2}  # 1.5 -> 2
    assert elpv.split_sizes(50) == {"train": 32, "validation": 8, "test": 10}  # 7.5 -> 8
    assert elpv.split_sizes(100) == {"train": 65, "validation": 15, "test": 20}
    for n in range(500):
        sizes = elpv.split_sizes(n)
        assert sum(sizes.values()) == n
        for name, percent in elpv.SPLIT_PERCENTAGES.items():
            # Validation and test are rounded, train takes the rest: within one of the share.
            assert abs(sizes[name] - percent * n / 100) <= 1


def test_split_proportions_per_stratum():
    splits = elpv.stratified_split(_records(REAL_STRATA))
    for (label, cell_type), n in REAL_STRATA.items():
        for name, split in splits.items():
            count = sum(r.label == label and r.cell_type == cell_type for r in split)
            assert count == elpv.split_sizes(n)[name]
    assert {name: len(split) for name, split in splits.items()} == {
        "train": 1705,
        "validation": 394,
        "test": 525,
    }


def test_split_is_deterministic_and_independent_of_input_order():
    records = _fake_records()
    first = elpv.stratified_split(records)
    shuffled = list(records)
    random.Random(7).shuffle(shuffled)
    assert elpv.stratified_split(list(reversed(records))) == first
    assert elpv.stratified_split(shuffled) == first
    assert elpv.stratified_split(records) == first


def test_split_depends_on_seed():
    records = _records(REAL_STRATA)
    assert elpv.stratified_split(records, seed=elpv.SPLIT_SEED) != elpv.stratified_split(records, seed=0)


def test_a_stratum_split_depends_on_that_stratum_only():
    records = _records(REAL_STRATA)
    without_p67 = [r for r in records if r.label != 2]
    full = elpv.stratified_split(records)
    partial = elpv.stratified_split(without_p67)
    for name in elpv.SPLIT_NAMES:
        assert [r for r in full[name] if r.label != 2] == partial[name]


def test_split_rejects_duplicate_file_names():
    record = ElpvRecord("images/cell0001.png", 0.0, "mono")
    other = ElpvRecord("elsewhere/cell0001.png", 1.0, "poly")
    with pytest.raises(ValueError, match=r"appear once.*Received: 'images/cell0001.png'"):
        elpv.stratified_split([record, other])


@pytest.mark.parametrize(
    ("probability", "label", "name", "defective"),
    [
        (0.0, 0, "p0", False),
        (0.3333333333333333, 1, "p33", False),
        (1 / 3, 1, "p33", False),
        (0.6666666666666666, 2, "p67", True),
        (2 / 3, 2, "p67", True),
        (1.0, 3, "p100", True),
    ],
)
def test_label_mapping(probability, label, name, defective):
    assert elpv.probability_to_label(probability) == label
    assert elpv.LABEL_NAMES[label] == name
    assert elpv.is_defective(probability) is defective
    assert elpv.DEFECTIVE_NAMES[int(defective)] == ("defective" if defective else "functional")


@pytest.mark.parametrize("probability", [0.5, -1 / 3, 4 / 3, 0.34, float("nan"), float("inf")])
def test_label_mapping_rejects_other_probabilities(probability):
    with pytest.raises(ValueError, match=r"one of 0, 1/3, 2/3 or 1\..*Received: defect_probability="):
        elpv.probability_to_label(probability)


def test_parse_labels_reads_the_real_format():
    text = "images/cell0001.png  1.0                 mono\n\nimages/cell0002.png  0.3333333333333333  poly\n"
    assert elpv.parse_labels(text) == [
        ElpvRecord("images/cell0001.png", 1.0, "mono"),
        ElpvRecord("images/cell0002.png", 0.3333333333333333, "poly"),
    ]
    assert elpv.parse_labels(text)[1].filename == "cell0002.png"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "images/a.png 1.0\n",
            r"3 whitespace-separated fields.*line 1 of labels.csv has 2.*Received: 'images/a.png 1.0'",
        ),
        ("images/a.png 0.5 mono\n", r"line 1 of labels.csv must be one of 0, 1/3, 2/3 or 1.*Received: '0.5'"),
        ("images/a.png high mono\n", r"line 1 of labels.csv must be one of 0, 1/3, 2/3 or 1.*Received: 'high'"),
        (
            "images/a.png 1.0 thin\n",
            r"cell type on line 1 of labels.csv must be one of \['mono', 'poly'\].*Received: 'thin'",
        ),
        (
            "images/a.png 1.0 mono\nimages/a.png 0.0 poly\n",
            r"'a.png' appears on lines 1 and 2.*Received: 'images/a.png 0.0 poly'",
        ),
    ],
    ids=["fields", "probability", "not_a_number", "cell_type", "duplicate"],
)
def test_parse_labels_errors(text, message):
    with pytest.raises(ValueError, match=message):
        elpv.parse_labels(text)


def test_png_check_rejects_wrong_images():
    good = (FAKE_DIR / "images" / "cell0001.png").read_bytes()
    elpv._check_png(good, "cell0001.png")
    with pytest.raises(ValueError, match=r"must be a PNG file.*Received: 4 bytes"):
        elpv._check_png(b"GIF8", "x.png")
    wrong_size = good[:16] + (299).to_bytes(4, "big") + good[20:]
    with pytest.raises(ValueError, match=r"300x300 8-bit grayscale PNG.*Received: 299x300, bit depth 8"):
        elpv._check_png(wrong_size, "x.png")


def test_package_data_dir_is_the_installed_package():
    data_dir = elpv.package_data_dir()
    assert (data_dir / "labels.csv").exists()
    assert (data_dir / "images").is_dir()


def test_missing_package_names_the_pip_install(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(elpv.importlib.resources, "files", missing)
    message = r"pip install elpv-dataset.*Received: No module named 'elpv_dataset'"
    with pytest.raises(ModuleNotFoundError, match=message):
        elpv.package_data_dir()


def test_manual_dir_without_labels_is_an_error(tmp_path):
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "notes.txt").write_text("not ELPV")
    builder = Elpv(data_dir=str(tmp_path / "data"))
    config = tfds.download.DownloadConfig(manual_dir=str(tmp_path / "manual"))
    with pytest.raises(FileNotFoundError, match=r"has no labels.csv.*Received: \['notes.txt'\]"):
        builder.download_and_prepare(download_config=config)


def test_manual_dir_copy_is_read_and_examples_are_decoded(tmp_path):
    builder = Elpv(data_dir=str(tmp_path))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(FAKE_DIR)))
    examples = list(tfds.as_numpy(builder.as_dataset(split="test")))
    expected = {r.filename: r for r in elpv.stratified_split(_fake_records())["test"]}
    assert sorted(e["filename"].decode() for e in examples) == sorted(expected)
    for example in examples:
        record = expected[example["filename"].decode()]
        assert example["image"].shape == (300, 300, 1)
        assert example["image"].dtype.name == "uint8"
        assert example["defect_probability"] == pytest.approx(record.defect_probability)
        assert example["label"] == record.label
        assert example["defective"] == int(record.defective)
        assert elpv.CELL_TYPE_NAMES[example["cell_type"]] == record.cell_type
    assert builder.info.supervised_keys == ("image", "defective")
