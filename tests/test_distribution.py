"""`--precision` and `--strategy` (harness/distribution.py): what each resolves to, mixed precision
keeping every invariant, the cache key naming the policy, and MirroredStrategy on two logical CPU
devices matching the single-device run.

Logical devices must be configured before TensorFlow starts, so the mirrored tests run in a
fresh process each (a script, or `runpytest_subprocess` with a conftest that configures them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tiny_specs import FEATURE_EXTRACTION, FINE_TUNE, experiment_text, spec_file

from harness import distribution

TESTS = Path(__file__).parent
TWO_LOGICAL_CPUS = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""


# ---------------------------------------------------------------- what each setting resolves to


@pytest.mark.parametrize(
    ("precision", "gpu", "amx", "policy"),
    [
        ("float32", True, True, "float32"),
        ("mixed", True, False, "mixed_float16"),
        ("mixed", True, True, "mixed_float16"),
        ("mixed", False, True, "mixed_bfloat16"),
        ("mixed_bfloat16", False, False, "mixed_bfloat16"),
        ("mixed_float16", False, False, "mixed_float16"),
    ],
)
def test_each_precision_names_one_policy(precision: str, gpu: bool, amx: bool, policy: str) -> None:
    assert distribution.policy_for(precision, gpu=gpu, amx=amx) == (policy, None)


def test_mixed_without_a_gpu_or_amx_stays_float32_and_says_why() -> None:
    assert distribution.policy_for("mixed", gpu=False, amx=False) == (
        "float32",
        "--precision mixed: no GPU, and the CPU has no AMX for bfloat16",
    )


def test_an_unknown_precision_or_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match=r"precision must be one of .*Received: 'half'"):
        distribution.policy_for("half", gpu=False, amx=False)
    with (
        pytest.raises(ValueError, match=r"strategy must be one of .*Received: 'tpu'"),
        distribution.placed(strategy="tpu"),
    ):
        pass


def test_amx_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8\n")
    assert distribution.has_amx(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma\n")
    assert not distribution.has_amx(cpuinfo)
    assert not distribution.has_amx(tmp_path / "missing")


# ---------------------------------------------------------------- mixed precision, in this process


def _tiny(*phases: object) -> object:
    from tiny_models import make_data, tiny_backbone

    from harness import spec

    return spec.experiment(
        name="tiny",
        dataset=spec.arrays(lambda: make_data(test=True), image_size=16, cache_key="tiny-distribution"),
        backbone=spec.custom_backbone("tiny", tiny_backbone),
        head=spec.classifier_head(dropout_rate=0.0),
        phases=phases
        or (
            spec.feature_extraction(epochs=3, learning_rate=5e-2, batch_size=16),
            spec.fine_tune(unfreeze_from="block_2_", epochs=1, learning_rate=1e-3, batch_size=16),
        ),
        expect=[spec.frozen_weights_unchanged(), spec.trainable_weights_changed()],
    )


def _run(experiment: object, **options: object) -> object:
    from harness import checks, engine

    run = engine.run(experiment, engine.RunOptions(**options))  # type: ignore[arg-type]
    checks.evaluate(experiment, run, results={}, recorded={}, gate=None)  # type: ignore[arg-type]
    return run


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_every_invariant(policy: str, tmp_path: Path) -> None:
    import keras

    from harness.cache import FeatureCache

    cache = FeatureCache(tmp_path)
    reference = _run(_tiny(), cache=cache).result
    run = _run(_tiny(), precision=policy, cache=cache)
    result = run.result
    assert result.failures == []  # frozen weights bit for bit, trainable ones changed, cached path agrees
    assert result.precision == policy
    assert [p.trainable_params for p in result.phases] == [p.trainable_params for p in reference.phases]
    assert [p.non_trainable_params for p in result.phases] == [p.non_trainable_params for p in reference.phases]
    # The cache key names the policy: the float32 entries are not read back for it.
    assert [p.cache for p in result.phases] == ["miss", "miss"]
    assert all(p.frozen_pass == f"keras (LiteRT: the network computes in {policy}; LiteRT would run it in float32)"
               for p in result.phases)  # fmt: skip
    assert [p.cache for p in _run(_tiny(), precision=policy, cache=cache).result.phases] == ["hit", "hit"]
    assert keras.config.dtype_policy().name == "float32"  # put back after the run
    # The run's model, for the exports, is a float32 copy holding the trained weights.
    exported = run.model.model
    assert {layer.dtype_policy.name for layer in run.model.backbone.layers} == {"float32"}
    assert all(v.dtype == "float32" for v in exported.weights)
    images = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    assert np.allclose(exported.predict(images, verbose=0).sum(axis=-1), 1.0, atol=1e-6)


@pytest.mark.slow
def test_the_layers_compute_in_the_policy_with_a_float32_softmax() -> None:
    from harness import distribution as placement_lib
    from harness import modalities
    from harness import model as model_lib

    experiment = _tiny()
    room = modalities.room(experiment.modality)
    with placement_lib.placed("mixed_float16") as placement:
        backbone = room.load_backbone(experiment)
        built = model_lib.load(experiment, backbone, 2, room.parts(experiment, backbone))
    assert placement.policy == "mixed_float16" and placement.devices
    assert built.backbone.get_layer("block_1_conv").compute_dtype == "float16"
    assert built.backbone.get_layer("block_1_conv").kernel.dtype == "float32"
    assert built.head.get_layer("predictions").compute_dtype == "float32"
    assert built.model.output.dtype == "float32"


@pytest.mark.slow
def test_two_rates_under_float16_loss_scaling_is_refused_plainly() -> None:
    from harness import errors, spec

    experiment = _tiny(
        spec.feature_extraction(epochs=1, learning_rate=5e-2, batch_size=16),
        spec.fine_tune(
            unfreeze_from="block_2_", epochs=1, learning_rate=1e-3, backbone_learning_rate=1e-4, batch_size=16
        ),
    )
    with pytest.raises(errors.HarnessFailure, match=r"fine_tune.backbone_learning_rate cannot train under mixed_f"):
        _run(experiment, precision="mixed_float16")


# ---------------------------------------------------------------- MirroredStrategy on two logical CPUs

MIRRORED_SCRIPT = TWO_LOGICAL_CPUS + textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from tiny_models import make_data, tiny_backbone
    from harness import checks, engine, spec

    def run(strategy, feature_cache, batch_size):
        experiment = spec.experiment(
            name="tiny",
            dataset=spec.arrays(lambda: make_data(test=True), image_size=16),
            backbone=spec.custom_backbone("tiny", tiny_backbone),
            head=spec.classifier_head(dropout_rate=0.0),
            phases=[
                spec.feature_extraction(epochs=3, learning_rate=5e-2, batch_size=batch_size),
                spec.fine_tune(unfreeze_from="block_2_", epochs=2, learning_rate=1e-3, batch_size=batch_size),
            ],
            expect=[spec.frozen_weights_unchanged(), spec.trainable_weights_changed()],
        )
        trained = engine.run(experiment, engine.RunOptions(strategy=strategy, feature_cache=feature_cache))
        checks.evaluate(experiment, trained, results={}, recorded={}, gate=None)
        weights = {v.path: v.numpy() for v in trained.model.model.weights}
        return trained.result, weights

    report = {}
    for feature_cache in (True, False):
        for batch_size in (64, 16):  # 64: the whole training set, one step per epoch
            single, expected = run("default", feature_cache, batch_size)
            mirrored, obtained = run("mirrored", feature_cache, batch_size)
            report[f"{feature_cache}-{batch_size}"] = {
                "devices": mirrored.devices,
                "single_devices": single.devices,
                "failures": [c.describe() for c in single.failures + mirrored.failures],
                "paths": [p.training_path for p in mirrored.phases],
                "trainable": [[p.trainable_params for p in r.phases] for r in (single, mirrored)],
                "max_weight_difference": max(float(np.abs(obtained[k] - expected[k]).max()) for k in expected),
            }
    print("REPORT " + json.dumps(report))
    """
)


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_matches_the_single_device_run() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        cwd=TESTS,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=600,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("REPORT ")]
    assert completed.returncode == 0 and lines, completed.stderr[-3000:]
    report = json.loads(lines[0].removeprefix("REPORT "))
    for case, figures in report.items():
        assert figures["devices"] == ["/device:CPU:0", "/device:CPU:1"], case
        assert figures["single_devices"] == ["/device:CPU:0"], case
        assert figures["failures"] == [], case  # every invariant holds on both
        assert figures["trainable"][0] == figures["trainable"][1], case
    assert report["True-64"]["paths"] == ["features", "activations@block_2_conv"]
    assert report["False-64"]["paths"] == ["full", "full"]
    # One step per epoch: the same updates, up to the order of a sum across the replicas.
    assert report["True-64"]["max_weight_difference"] < 1e-5
    assert report["False-64"]["max_weight_difference"] < 1e-5
    # Several steps per epoch: Keras's fit under a strategy draws one batch before training
    # (`_maybe_symbolic_build`), so each epoch sees the next shuffle's order. Not the same draw
    # (README, "Mirrored"): the weights differ by more than round-off, yet every invariant holds.
    assert report["True-16"]["max_weight_difference"] > 1e-4


@pytest.mark.slow
def test_the_plugin_trains_mirrored_in_mixed_precision_and_exports_float32(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makeconftest(f"def pytest_configure(config):\n{textwrap.indent(TWO_LOGICAL_CPUS, '    ')}")
    spec_pytester.makepyfile(
        **{
            "specs/tiny": spec_file(
                experiment_text(
                    "a",
                    data="lambda: make_data(test=True)",
                    phases=f"{FEATURE_EXTRACTION}, {FINE_TUNE}",
                    expect='export_matches("litert", max_abs_diff=1e-4)',
                )
            )
        }
    )
    result = spec_pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--strategy", "mirrored", "--precision", "mixed_bfloat16",
        "--export-dir", "exports", "--metrics-json", "metrics.json",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    document = json.loads((spec_pytester.path / "metrics.json").read_text())["experiments"]["a"]
    assert document["precision"] == "mixed_bfloat16"
    assert document["strategy"] == "mirrored"
    assert document["devices"] == ["/device:CPU:0", "/device:CPU:1"]
    assert {e["format"] for e in document["exports"]} == {"keras", "saved_model", "litert", "litert_int8"}
    assert all(e["argmax_agreement"] == 1.0 for e in document["exports"] if e["format"] != "litert_int8")
