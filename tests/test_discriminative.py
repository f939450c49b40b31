"""Discriminative learning rates: `fine_tune(backbone_learning_rate=...)` slows only the backbone."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import make_data, tiny_backbone

from harness import spec

pytest.importorskip("tensorflow")

from harness import engine  # imports TensorFlow

pytestmark = pytest.mark.slow  # trains a tiny model on both paths


def _deltas(backbone_learning_rate, feature_cache=True):
    experiment = spec.experiment(
        name="two_rates",
        dataset=spec.arrays(make_data, image_size=16),
        backbone=spec.custom_backbone("tiny", tiny_backbone),
        head=spec.classifier_head(dropout_rate=0.0),
        phases=[
            spec.fine_tune(
                unfreeze_from="block_2_",
                epochs=2,
                learning_rate=1e-2,
                backbone_learning_rate=backbone_learning_rate,
                batch_size=16,
            )
        ],
    )
    captured = {}
    original = engine._PhaseRunner.run

    def run(self, phase):
        captured["before"] = {v.path: v.numpy().copy() for v in self.built.model.weights}
        result = original(self, phase)
        captured["after"] = {v.path: v.numpy() for v in self.built.model.weights}
        captured["path"] = result.training_path
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine._PhaseRunner, "run", run)
        engine.run(experiment, engine.RunOptions(feature_cache=feature_cache))
    deltas = {
        path: float(np.max(np.abs(captured["after"][path] - before))) for path, before in captured["before"].items()
    }
    backbone = max(d for p, d in deltas.items() if "block_2_conv" in p)
    head = max(d for p, d in deltas.items() if "predictions" in p)
    return backbone, head, captured["path"]


@pytest.mark.parametrize("feature_cache", [True, False], ids=["cached", "full"])
def test_backbone_learns_at_its_own_rate(feature_cache):
    slow_backbone, head, path = _deltas(1e-7, feature_cache)
    same_backbone, same_head, _ = _deltas(None, feature_cache)
    assert path == ("activations@block_2_conv" if feature_cache else "full")
    # Adam moves each weight by about the learning rate per step: 8 steps at 1e-7 stay tiny.
    assert 0 < slow_backbone < 1e-5
    assert same_backbone > 1e-3
    assert head > 1e-3 and same_head > 1e-3
