"""The backbone catalog: TensorFlow-free names, sizes and layer names, checked against Keras."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.backbones import catalog
from harness.backbones.catalog import UnknownBackboneError, backbone_names, check_input_shape, describe

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_importing_the_catalog_and_package_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "import harness.backbones\n"
        "from harness.backbones import UnknownBackboneError, WeightsUnavailableError, describe\n"
        "describe('MobileNetV2'); harness.backbones.backbone_names()\n"
        "loaded = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_backbone_names_cover_keras_applications_and_efficientnet_lite0():
    names = backbone_names()
    for expected in [
        "MobileNetV2",
        "MobileNetV3Small",
        "ResNet50V2",
        "EfficientNetB7",
        "EfficientNetV2L",
        "ConvNeXtTiny",
        "NASNetLarge",
        "VGG19",
        "efficientnet_lite0",
    ]:
        assert expected in names
    assert names == sorted(names, key=str.lower)
    assert len(names) == len(set(names))


def test_describe_a_keras_application():
    info = describe("MobileNetV2")

    assert (info.name, info.family, info.module) == ("MobileNetV2", "keras_application", "mobilenet_v2")
    assert (info.default_size, info.min_size) == (224, 32)
    assert info.layer_names[0] == "preprocess"
    assert info.layer_names[-1] == "out_relu"
    assert "block_16_project_BN" in info.layer_names
    assert len(info.layer_names) == len(set(info.layer_names))


@pytest.mark.parametrize(
    ("name", "default_size", "min_size"),
    [("InceptionV3", 299, 75), ("Xception", 299, 71), ("NASNetLarge", 331, 32), ("EfficientNetB7", 600, 32)],
)
def test_sizes_come_from_keras(name, default_size, min_size):
    assert (describe(name).default_size, describe(name).min_size) == (default_size, min_size)


def test_describe_efficientnet_lite0_uses_its_builders_layer_names():
    from harness.backbones import efficientnet_lite as lite

    info = describe("efficientnet_lite0")

    assert (info.family, info.module, info.default_size) == ("efficientnet_lite", None, 224)
    assert info.layer_names == tuple(lite.efficientnet_lite0_layer_names(include_top=False))


@pytest.mark.slow
def test_efficientnet_lite0_batchnorm_and_weightless_layers_are_the_built_models():
    pytest.importorskip("tensorflow")
    import keras

    from harness.backbones import load_backbone

    info = describe("efficientnet_lite0")
    model = load_backbone("efficientnet_lite0", weights=None, input_shape=(32, 32, 3))
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]

    assert info.batchnorm_layers == {
        layer.name for layer in layers if isinstance(layer, keras.layers.BatchNormalization)
    }
    assert info.weightless_layers == {layer.name for layer in layers if not layer.weights}
    assert describe("MobileNetV2").batchnorm_layers is None and describe("MobileNetV2").weightless_layers is None


def test_unknown_name_suggests_the_closest_and_lists_the_valid_ones():
    with pytest.raises(UnknownBackboneError) as excinfo:
        describe("MobilenetV2")

    message = str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)
    assert "Unknown backbone 'MobilenetV2'. Did you mean 'MobileNetV2'" in message
    assert "Expected one of: ConvNeXtBase, " in message and "efficientnet_lite0" in message
    assert message.endswith("Received: name='MobilenetV2'")


def test_unknown_name_without_a_close_match_has_no_suggestion():
    with pytest.raises(UnknownBackboneError, match=r"Unknown backbone 'yolo'\. Expected one of: "):
        describe("yolo")


@pytest.mark.parametrize(
    ("input_shape", "kwargs", "expected"),
    [
        ((96, 96, 1), {}, r"must have 3 channels for backbone 'MobileNetV2'.*Received: input_shape=\(96, 96, 1\)"),
        ((16, 96, 3), {}, r"must be at least 32x32 for backbone 'MobileNetV2'.*Received: input_shape=\(16, 96, 3\)"),
        ((96, 96), {}, r"tuple of three integers .* e\.g\. \(224, 224, 3\)\. Received: input_shape=\(96, 96\)"),
        ("96x96", {}, r"tuple of three integers.*Received: input_shape='96x96'"),
        (
            (96, 96, 3),
            {"include_top": True, "weights": "imagenet"},
            r"`input_shape` must be \(224, 224, 3\) .*include_top=False.*Received: input_shape=\(96, 96, 3\)",
        ),
        ((None, None, 3), {"include_top": True}, r"fixed height and width.*Received: input_shape=\(None, None, 3\)"),
    ],
)
def test_check_input_shape_messages(input_shape, kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        check_input_shape("MobileNetV2", input_shape, **kwargs)


def test_check_input_shape_accepts_valid_shapes():
    assert check_input_shape("MobileNetV2", [96, 128, 3]) == (96, 128, 3)
    assert check_input_shape("MobileNetV2", (None, None, 3)) == (None, None, 3)
    assert check_input_shape("InceptionV3", (299, 299, 3), include_top=True, weights="imagenet") == (299, 299, 3)


# Against the installed Keras (imports TensorFlow; a few seconds).


@pytest.mark.slow
def test_every_installed_keras_application_is_in_the_catalog():
    from harness.backbones import keras_apps

    missing = sorted(set(keras_apps.application_names()) - set(backbone_names()))
    assert not missing, f"Regenerate with `python -m harness.backbones.regenerate_catalog`: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["MobileNetV2", "MobileNetV3Small", "EfficientNetB0"])
def test_json_matches_the_installed_keras(name):
    from harness.backbones import keras_apps

    stored = json.loads(catalog.KERAS_APPLICATIONS_JSON.read_text(encoding="utf-8"))["applications"][name]

    assert keras_apps.catalog_entry(name) == stored, (
        f"keras_applications.json is stale for {name}. "
        "To update it, run `python -m harness.backbones.regenerate_catalog`"
    )


@pytest.mark.slow
def test_load_backbone_layer_names_are_the_catalogs_however_many_models_were_built():
    import keras

    from harness.backbones import load_backbone

    # MobileNetV3 has unnamed layers (`re_lu_3`, ...) that Keras numbers per session.
    for _ in range(2):
        model = load_backbone("MobileNetV3Small", weights=None)
        names = [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        assert tuple(names) == describe("MobileNetV3Small").layer_names
