"""Exports of a trained model: each format read back from its file matches the trained model.

One tiny experiment (16x16 images, a Conv+BatchNorm backbone, a Dense head) is trained once
for the module and exported as every format. The tests read the files back, load `model.keras`
in a fresh Python process that never imports the harness, and tamper with files to show that
`export_matches` catches a changed model.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tiny_models

pytest.importorskip("tensorflow")

from harness import engine, invariants, spec  # imports TensorFlow
from harness.export import ExportError, measure
from harness.export import formats as formats_lib
from harness.results import Run

pytestmark = pytest.mark.slow  # trains a tiny model and converts it four ways

ROUND_OFF = 1e-5  # float32 kernels of another runtime, on probabilities


def tiny_experiment() -> spec.Experiment:
    return spec.experiment(
        name="tiny",
        dataset=spec.arrays(lambda: tiny_models.make_data(test=True), image_size=16),
        backbone=spec.custom_backbone("tiny", tiny_models.tiny_backbone),
        head=spec.classifier_head(dropout_rate=0.0),
        phases=[
            spec.feature_extraction(epochs=3, learning_rate=5e-2, batch_size=16),
            spec.fine_tune(unfreeze_from="block_2_", epochs=1, learning_rate=1e-3, batch_size=16),
        ],
        expect=[],
    )


@pytest.fixture(scope="module")
def trained() -> Run:
    return engine.run(tiny_experiment(), engine.RunOptions())


@pytest.fixture(scope="module")
def exported(trained: Run, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("export")
    measured = measure.export(trained, spec.EXPORT_FORMATS, folder)
    return folder, {e.format: e for e in measured}


def test_every_format_is_written_and_matches_the_trained_model(exported: tuple[Path, dict[str, Any]]) -> None:
    folder, measured = exported
    assert list(measured) == list(spec.EXPORT_FORMATS)
    for format, export in measured.items():
        assert (folder / formats_lib.FILES[format]).exists()
        assert export.path == formats_lib.FILES[format]
        assert export.size_bytes == formats_lib.size_bytes(folder / export.path) > 0
        assert (export.split, export.n) == ("test", 32)
    assert measured["keras"].max_abs_diff <= 1e-7  # the same kernels
    assert measured["saved_model"].max_abs_diff <= ROUND_OFF
    assert measured["litert"].max_abs_diff <= ROUND_OFF
    for format in ("keras", "saved_model", "litert"):
        assert measured[format].argmax_agreement == 1.0
    # Quantized: probabilities in steps of 1/256, activations in 8 bits.
    assert 0 < measured["litert_int8"].max_abs_diff < 0.1
    assert measured["litert_int8"].argmax_agreement >= 0.9


def test_keras_file_loads_in_a_fresh_process_without_the_harness(
    trained: Run, exported: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    folder, _ = exported
    pixels = tiny_models.make_data(test=True)["test"][0][:8]
    np.save(tmp_path / "pixels.npy", pixels)
    script = textwrap.dedent(
        f"""
        import os, sys, json
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import keras, numpy as np
        model = keras.saving.load_model({str(folder / "model.keras")!r})
        probabilities = model.predict(np.load({str(tmp_path / "pixels.npy")!r}), verbose=0)
        np.save({str(tmp_path / "loaded.npy")!r}, probabilities)
        print(json.dumps({{"harness": any(m.split(".")[0] == "harness" for m in sys.modules),
                          "input": list(model.inputs[0].shape), "dtype": model.inputs[0].dtype}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300)
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts == {"harness": False, "input": [None, 16, 16, 3], "dtype": "float32"}
    loaded = np.load(tmp_path / "loaded.npy")
    expected = np.asarray(trained.model.model.predict(pixels, verbose=0))
    np.testing.assert_allclose(loaded, expected, atol=1e-6)
    np.testing.assert_allclose(loaded.sum(axis=-1), 1.0, atol=1e-5)


def test_int8_model_takes_uint8_pixels_and_gives_uint8_probabilities(exported: tuple[Path, dict[str, Any]]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    folder, _ = exported
    interpreter = Interpreter(model_path=str(folder / "model_int8.tflite"))
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert source["dtype"] == np.uint8 and target["dtype"] == np.uint8
    assert list(source["shape_signature"]) == [-1, 16, 16, 3]
    assert source["quantization"][0] == pytest.approx(1.0, rel=1e-3)  # raw pixels: one step per level
    assert target["quantization"] == (pytest.approx(1 / 256), 0)


def _matches(result: Any, measured: list[Any], format: str, bound: float) -> Any:
    result.exports = measured
    return invariants.export_matches(result, spec.export_matches(format, max_abs_diff=bound))


def test_tampered_litert_file_fails_export_matches(
    trained: Run, exported: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """The head's kernel, found in the flat buffer by its bytes, is changed in the file."""
    folder, _ = exported
    kernel = trained.model.head.get_layer("predictions").kernel.numpy()
    flat = (folder / "model_float32.tflite").read_bytes()
    stored = next(k for k in (kernel.T, kernel) if np.ascontiguousarray(k).tobytes() in flat)
    tampered = tmp_path / "model_float32.tflite"
    tampered.write_bytes(
        flat.replace(np.ascontiguousarray(stored).tobytes(), np.ascontiguousarray(stored * 0.5 + 0.3).tobytes())
    )

    untouched = _matches(
        trained.result, measure.measure(trained, {"litert": folder / "model_float32.tflite"}), "litert", 1e-4
    )
    check = _matches(trained.result, measure.measure(trained, {"litert": tampered}), "litert", 1e-4)
    assert untouched.passed
    assert not check.passed
    assert check.name == "export_matches[litert]"
    assert check.expected == "max |probability difference| <= 1.0e-04"
    assert check.obtained.endswith("over 32 test images")
    assert float(check.obtained.split()[0]) > 1e-3
    assert check.details[0].startswith("argmax agreement with the Keras model: ")


def test_tampered_keras_file_fails_export_matches(
    trained: Run, exported: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    import keras

    folder, _ = exported
    model = keras.saving.load_model(folder / "model.keras")
    dense = next(layer for layer in model._flatten_layers() if layer.name == "predictions")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel, bias + np.array([0.5, -0.5], dtype=bias.dtype)])
    model.save(tmp_path / "model.keras")

    check = _matches(trained.result, measure.measure(trained, {"keras": tmp_path / "model.keras"}), "keras", 1e-6)
    assert not check.passed
    assert float(check.obtained.split()[0]) > 1e-3


def test_int8_accuracy_floor_reads_the_int8_export_not_the_keras_model(
    trained: Run, exported: tuple[Path, dict[str, Any]]
) -> None:
    _, measured = exported
    worse = dataclasses.replace(measured["litert_int8"], accuracy=0.5)  # as a badly quantized model would score
    trained.result.exports = [measured["litert"], worse]
    floor = spec.min_test_accuracy(0.6, runtime="litert_int8")
    check = invariants.min_accuracy(trained.result, floor)
    assert not check.passed
    assert check.name == "min_test_accuracy[litert_int8]"
    assert check.obtained == "0.5000 (model_int8.tflite read back, 32 test images)"
    assert check.details == [f"the Keras model: {trained.result.final.test_accuracy:.4f}"]
    assert invariants.min_accuracy(trained.result, spec.min_test_accuracy(0.6, runtime="litert")).passed
    trained.result.exports = []
    assert invariants.min_accuracy(trained.result, floor).obtained == "no litert_int8 export was measured"


def test_a_file_that_does_not_load_back_is_one_plain_error(tmp_path: Path) -> None:
    garbage = tmp_path / "model_float32.tflite"
    garbage.write_bytes(b"not a flat buffer")
    with pytest.raises(ExportError, match=r"^export to 'litert' failed: model_float32.tflite does not load back: "):
        formats_lib.read("litert", garbage)


@pytest.mark.parametrize("module", ["mobilenet_v2", "densenet", "vgg16"])  # "tf", "torch" and "caffe" modes
def test_keras_application_preprocessing_is_exported_as_keras_layers(module: str, tmp_path: Path) -> None:
    import keras

    from harness.backbones.keras_apps import PreprocessInput

    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Conv2D(2, 3, name="conv")(PreprocessInput(module, name="preprocess")(inputs))
    backbone = keras.Model(inputs, outputs)
    exported = formats_lib._with_keras_preprocessing(backbone)

    assert not any(isinstance(layer, PreprocessInput) for layer in exported.layers)
    assert exported.get_layer("conv") is backbone.get_layer("conv")  # the trained layers are shared
    pixels = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(exported(pixels), backbone(pixels), rtol=1e-5, atol=1e-4)
    exported.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        config = archive.read("config.json").decode()
    assert "harness" not in config  # Keras's own layers only: loads without any registration
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "m.keras")(pixels), exported(pixels), atol=1e-6)
