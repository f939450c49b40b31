"""`harness.symmetry`: the dihedral views and the seeded draw that both training paths share."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness import spec, symmetry

square_batches = st.integers(1, 6).flatmap(
    lambda side: hnp.arrays(np.float32, (2, side, side, 3), elements=st.floats(0, 255, width=32))
)


def test_views_are_what_their_names_say() -> None:
    image = np.arange(2 * 2 * 1, dtype=np.float32).reshape(1, 2, 2, 1)  # [[0, 1], [2, 3]]
    expected = {
        "identity": [[0, 1], [2, 3]],
        "turn 90": [[1, 3], [0, 2]],  # counter-clockwise, as tf.image.rot90 and np.rot90
        "turn 180": [[3, 2], [1, 0]],
        "turn 270": [[2, 0], [3, 1]],
        "flip left-right": [[1, 0], [3, 2]],
        "turn 90 + flip": [[3, 1], [2, 0]],
        "flip up-down": [[2, 3], [0, 1]],
        "turn 270 + flip": [[0, 2], [1, 3]],
    }
    assert list(expected) == list(spec.DIHEDRAL_VIEWS)
    for k, name in enumerate(spec.DIHEDRAL_VIEWS):
        assert symmetry.view(image, k)[0, :, :, 0].tolist() == expected[name], name


@pytest.mark.slow
def test_views_match_tensorflow_image_ops() -> None:
    tf = pytest.importorskip("tensorflow")
    images = np.random.default_rng(0).uniform(0, 255, (3, 5, 5, 3)).astype(np.float32)
    for k in range(8):
        reference = tf.image.rot90(images, k % 4)
        if k >= 4:
            reference = tf.image.flip_left_right(reference)
        np.testing.assert_array_equal(symmetry.view(images, k), reference.numpy())


@given(square_batches)
def test_every_view_permutes_the_pixels_and_the_flips_keep_the_shape(images: np.ndarray) -> None:
    for k in range(8):
        viewed = symmetry.view(images, k)
        assert viewed.shape == images.shape
        np.testing.assert_array_equal(np.sort(viewed, axis=None), np.sort(images, axis=None))
    # The 8 views are closed under composition: turning a view gives another view.
    for k in range(8):
        turned = symmetry.view(symmetry.view(images, k), 1)
        assert any(np.array_equal(turned, symmetry.view(images, j)) for j in range(8))


def test_views_of_picks_one_view_per_image() -> None:
    images = np.random.default_rng(1).uniform(0, 255, (4, 3, 3, 1)).astype(np.float32)
    picked = symmetry.views_of(images, [0, 1, 5, 6])
    for i, k in enumerate([0, 1, 5, 6]):
        np.testing.assert_array_equal(picked[i], symmetry.view(images[i : i + 1], k)[0])
    assert symmetry.views_of(images, []).shape == (0, 3, 3, 1)


@given(
    size=st.integers(1, 70),
    batch_size=st.integers(1, 32),
    num_views=st.sampled_from([4, 8]),
    seed=st.integers(0, 2**31 - 1),
)
def test_each_epoch_shows_every_image_once_in_a_drawn_view(
    size: int, batch_size: int, num_views: int, seed: int
) -> None:
    draw = symmetry.Draw(seed, size, batch_size, num_views)
    for epoch in range(2):
        batches = [draw.batch(epoch * draw.steps + step) for step in range(draw.steps)]
        indices = np.concatenate([i for i, _ in batches])
        positions = np.concatenate([p for _, p in batches])
        assert sorted(indices.tolist()) == list(range(size))
        assert positions.min() >= 0 and positions.max() < num_views
        assert all(1 <= len(i) <= batch_size for i, _ in batches)
    # A pure function of the seed: a second draw gives the same batches.
    again = symmetry.Draw(seed, size, batch_size, num_views)
    for index in range(2 * draw.steps):
        for a, b in zip(draw.batch(index), again.batch(index), strict=False):
            np.testing.assert_array_equal(a, b)


def test_epochs_draw_new_orders_and_views() -> None:
    draw = symmetry.Draw(0, 1000, 32, 8)
    (order_1, views_1), (order_2, views_2) = draw.epoch(0), draw.epoch(1)
    assert not np.array_equal(order_1, order_2)
    assert np.mean(views_1 == views_2) < 0.25  # independent draws agree on about 1 in 8
    assert np.bincount(views_1, minlength=8).min() > 80  # about 125 each
