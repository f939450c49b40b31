"""Text experiments through pytest, on a tiny keras-hub encoder (3-layer BERT, hidden size 32) saved as a
local preset folder, as a user names one: every data source, exact trainable counts, the frozen
check over the embeddings, the cached routes, exports read back, bad data and offline presets.

The encoder's transformer layer (hidden 32, intermediate 64): query, key, value and output
projections 4 x (32 x 32 + 32) = 4,224, two layer norms 2 x 64, the feed-forward 32 x 64 + 64
and 64 x 32 + 32 = 4,192: 8,544 parameters. The head pools the mean of the real tokens (32
numbers) into a softmax over 2 classes: 66.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tiny_text

pytestmark = pytest.mark.slow  # builds keras-hub models and trains

HEAD = 32 * 2 + 2
BLOCK = 4 * (32 * 32 + 32) + 2 * 64 + (32 * 64 + 64) + (64 * 32 + 32)
PHASES = (
    "feature_extraction(epochs=10, learning_rate=3e-2, batch_size=16), "
    'fine_tune(unfreeze_from="transformer_layer_2", epochs=2, learning_rate=1e-3, batch_size=16)'
)
EXPECT = (
    "frozen_weights_unchanged(), trainable_weights_changed(), "
    f"trainable_params(feature_extraction={HEAD}, fine_tune={HEAD + BLOCK}), min_val_accuracy(0.85)"
)


@pytest.fixture(scope="session")
def preset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_text.preset_folder(tmp_path_factory.getbasetemp())


def spec(dataset: str, preset: Path, *, name: str = "tiny_text", phases: str = PHASES, expect: str = EXPECT) -> str:
    return (
        "import tiny_text\nfrom harness import *\n\n"
        f"experiment(\n    name={name!r},\n    dataset={dataset},\n"
        f"    backbone=keras_hub_backbone({str(preset)!r}),\n    head=classifier_head(dropout_rate=0.0),\n"
        f"    phases=[{phases}],\n    expect=[{expect}],\n)\n"
    )


@pytest.fixture
def text_pytester(spec_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # `import tiny_text` in spec files
    return spec_pytester


def metrics(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "metrics.json").read_text())["experiments"]


def test_lists_of_strings_train_with_exact_counts_and_the_cached_routes(text_pytester, preset) -> None:
    text_pytester.makepyfile(**{"specs/tiny": spec("arrays(tiny_text.make_data, sequence_length=16)", preset)})
    result = text_pytester.runpytest_inprocess("--metrics-json", "metrics.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    phases = metrics(text_pytester)["tiny_text"]["phases"]
    assert [p["training_path"] for p in phases] == ["features", "activations@transformer_layer_2"]
    assert [p["trainable_params"] for p in phases] == [HEAD, HEAD + BLOCK]
    assert all(p["frozen_pass"] == "keras" for p in phases)


@pytest.mark.parametrize("source", ["text_folder", "text_csv"])
def test_files_on_disk_train(text_pytester, preset, source: str) -> None:
    texts, labels = tiny_text.sentences(200, seed=3)
    unique = dict(zip(texts, labels.tolist(), strict=True))  # a text in two splits is refused
    texts, labels = list(unique), list(unique.values())
    if source == "text_folder":
        tiny_text.write_folder(text_pytester.path / "data", texts, labels)
        dataset = 'text_folder("../data", sequence_length=16)'
    else:
        rows = ["text,topic", *(f'"{t}",{"sport" if y else "weather"}' for t, y in zip(texts, labels, strict=True))]
        (text_pytester.path / "data.csv").write_text("\n".join(rows), encoding="utf-8")
        dataset = 'text_csv("../data.csv", text_column="text", label_column="topic", sequence_length=16)'
    text_pytester.makepyfile(**{"specs/tiny": spec(dataset, preset)})
    result = text_pytester.runpytest_inprocess("--metrics-json", "metrics.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert metrics(text_pytester)["tiny_text"]["class_names"] == ["sport", "weather"]


def test_a_tfds_text_data_set_trains(text_pytester, preset, tmp_path: Path) -> None:
    dataset = f'tfds_dataset("bbc_news", validation_split=0.2, test_split="test", sequence_length=16, data_dir={str(tmp_path)!r})'
    phases = "feature_extraction(epochs=1, batch_size=64)"
    text_pytester.makepyfile(
        **{"specs/tiny": spec(dataset, preset, phases=phases, expect="frozen_weights_unchanged()")}
    )
    result = text_pytester.runpytest_inprocess("--metrics-json", "metrics.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    found = metrics(text_pytester)["tiny_text"]
    assert found["split_sizes"] == {"train": 1361, "validation": 340, "test": 426}
    assert found["class_names"] == ["business", "entertainment", "politics", "sport", "tech"]


def test_everything_wrong_with_a_text_folder_is_one_failure_before_training(text_pytester, preset) -> None:
    data = text_pytester.path / "data"
    tiny_text.write_folder(data, *tiny_text.sentences(40, seed=4))
    (data / "weather" / "latin.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (data / "sport" / "empty.txt").write_bytes(b"")
    (data / "news").mkdir()
    (data / "news" / "notes.md").write_text("not a text file", encoding="utf-8")
    text_pytester.makepyfile(**{"specs/tiny": spec('text_folder("../data", sequence_length=16)', preset)})
    result = text_pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*news/: 1 other file (.md)",
            "*has 1 file that does not decode as utf-8:",
            "  weather/latin.txt: byte 0xe9 at offset 3*it decodes as cp1252",
            '*text_folder(..., encoding="cp1252")*',
            "  sport/empty.txt: 0 bytes",
        ]
    )
    failure = result.stdout.str().split("FAILURES")[1].split("harness summary")[0]
    assert "Traceback" not in failure and "tensorflow" not in failure.lower()


def test_exports_take_raw_strings_and_load_back_in_a_fresh_process(text_pytester, preset) -> None:
    text_pytester.makepyfile(
        **{
            "specs/tiny": spec(
                "arrays(tiny_text.make_data, sequence_length=16)",
                preset,
                expect="export_matches('keras', max_abs_diff=1e-5)",
            )
        }
    )
    result = text_pytester.runpytest_inprocess("--export-dir", "exports", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    folder = text_pytester.path / "exports" / "tiny_text"
    card = json.loads((folder / "model_card.json").read_text())
    assert {e["format"] for e in card["exports"]} == {"keras", "saved_model", "litert"}
    assert all(e["max_abs_diff"] < 1e-5 and e["argmax_agreement"] == 1.0 for e in card["exports"])
    script = (
        "import sys, numpy as np, keras, tensorflow as tf\n"
        "import harness.export.raw_text  # registers RawTextClassifier\n"
        "import tensorflow_text  # noqa: F401  (the SavedModel's tokenizer ops)\n"
        f"folder = {str(folder)!r}\n"
        "texts = tf.constant(['rain and wind today', 'the team scored a goal'])\n"
        "a = np.asarray(keras.saving.load_model(folder + '/model.keras')(texts))\n"
        "served = tf.saved_model.load(folder + '/saved_model')\n"
        "b = served.serve(texts).numpy()\n"
        "assert a.shape == (2, 2) and np.allclose(a.sum(1), 1, atol=1e-5), a\n"
        "assert np.max(np.abs(a - b)) < 1e-5, (a, b)\n"
        "print('loaded', a.argmax(1).tolist())\n"
    )
    ran = text_pytester.run(sys_executable(), "-c", script, timeout=300)
    assert ran.ret == 0, ran.stderr.str()
    ran.stdout.fnmatch_lines(["loaded [[]*[]]"])


def test_a_preset_that_cannot_be_downloaded_is_skipped_naming_it(text_pytester, monkeypatch) -> None:
    # No network here: keras-hub's download of a preset by name fails, as it does offline.
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(text_pytester.path / "kaggle-cache"))
    text_pytester.makepyfile(
        **{
            "specs/tiny": "from harness import *\n\nexperiment(name='online', "
            "dataset=arrays({'train': (['a'] * 8, [0, 1] * 4), 'validation': (['b'] * 4, [0, 1] * 2)}), "
            "backbone=keras_hub_backbone('bert_tiny_en_uncased'), phases=[feature_extraction(epochs=1)])\n"
        }
    )
    result = text_pytester.runpytest_inprocess("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*online*keras-hub could not load the preset 'bert_tiny_en_uncased'*"])


def sys_executable() -> str:
    import sys

    return sys.executable


def test_lora_trains_adapters_only_and_exports_them_merged(text_pytester, preset) -> None:
    # Rank-2 adapters on the query and value projections of transformer_layer_2 (32 x 2 heads x 16,
    # so a: 32 x 2 x 2, b: 2 x 16 each): 2 x (128 + 32) = 320, and the head.
    phases = (
        "feature_extraction(epochs=10, learning_rate=3e-2, batch_size=16), "
        'fine_tune(unfreeze_from="transformer_layer_2", lora_rank=2, epochs=2, learning_rate=1e-2, batch_size=16)'
    )
    expect = (
        "frozen_weights_unchanged(), trainable_weights_changed(), "
        f"trainable_params(feature_extraction={HEAD}, fine_tune={HEAD + 320}), export_matches('litert', max_abs_diff=1e-5)"
    )
    text_pytester.makepyfile(
        **{"specs/tiny": spec("arrays(tiny_text.make_data, sequence_length=16)", preset, phases=phases, expect=expect)}
    )
    result = text_pytester.runpytest_inprocess(
        "--metrics-json", "metrics.json", "--export-dir", "exports", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    found = metrics(text_pytester)["tiny_text"]
    assert found["merged_adapters_max_abs_diff"] < 1e-5
    assert "adapters_merge_into_plain_weights" in [c["name"] for c in found["checks"]]
    frozen = [c for c in found["checks"] if c["name"] == "frozen_weights_unchanged" and c["phase"] == "fine_tune"]
    assert frozen and frozen[0]["passed"]  # the adapted kernels and their biases among them
    # The export holds plain weights: no adapter variables in the Keras file.
    import zipfile

    with zipfile.ZipFile(text_pytester.path / "exports" / "tiny_text" / "model.keras") as archive:
        assert b"lora" not in archive.read("config.json")
