"""What a session keeps across experiments: each data set loaded once, and the end-to-end
validation check run once per cache entry, the later phases on the entry scoring the cached path.

The cached path's validation accuracy is the real model's (the check `cached_path_matches_end_to_end`
holds it to within 2 images, and here it is exact); these tests show that a later experiment on
a shown entry reports the figure the end-to-end pass would have given, that an entry whose paths
disagreed is checked again, and that data sets are loaded once per session.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import tiny_models

pytest.importorskip("tensorflow")

from harness import engine, invariants, modalities, spec  # imports TensorFlow
from harness.cache import FeatureCache
from harness.data import loading
from harness.results import Check, PhaseResult
from harness.session_memo import KEPT_DATA_SETS, SessionMemo

pytestmark = pytest.mark.slow  # trains tiny models

DATA = spec.arrays(tiny_models.make_data, image_size=16, cache_key="tiny-memo")


def grid_point(name: str, learning_rate: float) -> spec.Experiment:
    return spec.experiment(
        name=name,
        dataset=DATA,
        backbone=spec.custom_backbone("tiny", tiny_models.tiny_backbone),
        head=spec.classifier_head(dropout_rate=0.0),
        phases=[spec.feature_extraction(epochs=3, learning_rate=learning_rate)],
    )


@pytest.fixture
def end_to_end_passes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The splits scored on raw images through the real model, in order."""
    passes: list[str] = []
    inputs = engine._PhaseRunner._inputs

    def counted(self: Any, split: str) -> Any:
        passes.append(split)
        return inputs(self, split)

    monkeypatch.setattr(engine._PhaseRunner, "_inputs", counted)
    return passes


def run(experiment: spec.Experiment, cache: FeatureCache, memo: SessionMemo | None) -> PhaseResult:
    (phase,) = engine.run(experiment, engine.RunOptions(cache=cache, memo=memo)).result.phases
    return phase


def test_a_later_experiment_on_a_shown_entry_scores_the_cached_path_with_the_same_figure(
    tmp_path: Any, end_to_end_passes: list[str]
) -> None:
    cache, memo = FeatureCache(tmp_path), SessionMemo()
    first = run(grid_point("first", 3e-2), cache, memo)
    assert first.training_path == "features" and first.cached_val_accuracy is not None
    assert first.cached_path_shown_by is None and end_to_end_passes == ["validation"]

    later = run(grid_point("later", 1e-1), cache, memo)
    assert later.cache == "hit" and later.cached_path_shown_by == "first"
    assert later.cached_val_accuracy is None and end_to_end_passes == ["validation"]  # no second pass

    # The same experiment without a memo: its end-to-end figure, and the cached one it reports.
    alone = run(grid_point("later", 1e-1), cache, None)
    assert alone.cached_path_shown_by is None and end_to_end_passes == ["validation", "validation"]
    assert later.val_accuracy == alone.cached_val_accuracy == alone.val_accuracy
    assert later.val_loss == pytest.approx(alone.val_loss, rel=1e-5)


def test_an_entry_whose_paths_disagreed_is_checked_again(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, end_to_end_passes: list[str]
) -> None:
    disagreed = Check(
        name="cached_path_matches_end_to_end",
        phase="feature_extraction",
        passed=False,
        expected="agreement",
        obtained="none",
    )
    monkeypatch.setattr(invariants, "cached_path", lambda phase, n: disagreed)
    cache, memo = FeatureCache(tmp_path), SessionMemo()
    run(grid_point("first", 3e-2), cache, memo)
    later = run(grid_point("later", 1e-1), cache, memo)
    assert later.cached_path_shown_by is None and later.cached_val_accuracy is not None
    assert end_to_end_passes == ["validation", "validation"]


def test_each_data_set_is_loaded_once_and_the_last_ones_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[spec.Dataset] = []
    load = loading.load
    monkeypatch.setattr(loading, "load", lambda dataset: (loaded.append(dataset), load(dataset))[1])
    memo, room = SessionMemo(), modalities.room(spec.IMAGE)
    datasets = [spec.arrays(tiny_models.make_data, image_size=16) for _ in range(KEPT_DATA_SETS + 1)]
    experiments = [grid_point(f"e{i}", 1e-2) for i in range(len(datasets))]
    experiments = [dataclasses.replace(e, dataset=d) for e, d in zip(experiments, datasets, strict=True)]
    first = memo.load(experiments[0], room)
    assert memo.load(experiments[0], room) is first and loaded == [datasets[0]]
    for experiment in experiments[1:]:
        memo.load(experiment, room)
    assert memo.load(experiments[-1], room) is not first and loaded == datasets
    memo.load(experiments[0], room)  # the least recently used: dropped, loaded again
    assert loaded == [*datasets, datasets[0]]
    assert first.labels("train") is first.labels("train")  # computed once per split
