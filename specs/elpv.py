"""Solar-cell defects (ELPV, Deitsch et al. 2019) with an ImageNet EfficientNet-Lite0.

The published baseline fine-tuned an ImageNet VGG19 and reached 88.4% accuracy. These specs run
the plain Keras recipe declaratively: train a new head on the frozen backbone, then fine-tune the
top blocks (block 11 up, plus the 1280-filter head conv) at a low learning rate with BatchNorm
frozen, and check what must hold.
"""

from harness import (
    beats,
    classifier_head,
    early_stopping,
    efficientnet_lite0,
    experiment,
    export_matches,
    feature_extraction,
    fine_tune,
    frozen_weights_unchanged,
    loss_decreases,
    min_test_accuracy,
    min_val_accuracy,
    tfds_dataset,
    trainable_params,
    trainable_weights_changed,
)

IMAGE_SIZE = 224
PHASES = [
    feature_extraction(epochs=10, learning_rate=1e-3),
    # Keeps the weights of the epoch with the lowest validation loss (fine-tuning overfits fast).
    fine_tune(
        unfreeze_from="block_11_",
        epochs=8,
        learning_rate=3e-4,
        callbacks=[early_stopping(monitor="val_loss", patience=3, restore_best_weights=True)],
    ),
]
INVARIANTS = [frozen_weights_unchanged(), trainable_weights_changed(), loss_decreases()]

experiment(
    name="elpv_binary_lite0",
    dataset=tfds_dataset("elpv", label_key="defective", image_size=IMAGE_SIZE, test_split="test", slices="cell_type"),
    backbone=efficientnet_lite0(weights="imagenet"),
    head=classifier_head(dropout_rate=0.2),
    phases=PHASES,
    # Floors: the lowest of two seeds measured on the CI machines, rounded down. Baselines recorded on
    # the AMD EPYC machine of 2026-12-03 (0: val 0.868 test 0.872, 1: val 0.865 test 0.870); on the
    # AMD EPYC machine before, 0.886 / 0.857 and 0.863 / 0.861. Against scratch (0.688), transfer measured
    # +0.170 (seed 0) and +0.173 (seed 1) test accuracy. On the Cascade Lake machine: 0.876 / 0.870, 0.871 / 0.882.
    # Exports: the LiteRT float32 file reproduced the probabilities within 7.3e-6 (seed 0) and 6.6e-6
    # (seed 1); the int8 file scored 0.863 and 0.857 test accuracy (floor: the lower, rounded down).
    expect=[
        *INVARIANTS,
        trainable_params(feature_extraction=2_562, fine_tune=2_646_946),
        min_val_accuracy(0.86),
        min_test_accuracy(0.85),
        beats("elpv_binary_scratch", margin=0.16),
        export_matches(format="litert", max_abs_diff=1e-4),
        min_test_accuracy(0.85, runtime="litert_int8"),
    ],
)

experiment(
    name="elpv_binary_scratch",
    dataset=tfds_dataset("elpv", label_key="defective", image_size=IMAGE_SIZE, test_split="test", slices="cell_type"),
    backbone=efficientnet_lite0(weights=None),
    head=classifier_head(dropout_rate=0.2),
    phases=PHASES,
    # The same recipe and budget from random weights: it stays at the majority class (0.688).
    expect=[*INVARIANTS, trainable_params(feature_extraction=2_562, fine_tune=2_646_946)],
)

experiment(
    name="elpv_severity_lite0",
    dataset=tfds_dataset("elpv", label_key="label", image_size=IMAGE_SIZE, test_split="test", slices="cell_type"),
    backbone=efficientnet_lite0(weights="imagenet"),
    head=classifier_head(dropout_rate=0.2),
    phases=PHASES,
    # Floors: the lowest of two seeds measured on the CI machines, rounded down. Baselines recorded on
    # the AMD EPYC machine of 2026-12-03 (0: val 0.766 test 0.773, 1: val 0.782 test 0.798); on the
    # AMD EPYC machine before, 0.805 / 0.766 and 0.739 / 0.773. On the Cascade Lake machine: 0.784 / 0.789,
    # 0.759 / 0.787.
    expect=[
        *INVARIANTS,
        trainable_params(feature_extraction=5_124, fine_tune=2_649_508),
        min_val_accuracy(0.73),
        min_test_accuracy(0.76),
    ],
)
