"""Solar-cell defects (ELPV, Deitsch et al. 2019) with an ImageNet EfficientNet-Lite0.

The published baseline fine-tuned an ImageNet VGG19 and reached 88.4% accuracy. These specs run
the seeds' recipe declaratively: train a new head on the frozen backbone, then fine-tune the
top blocks (block 11 up, plus the 1280-filter head conv) at a low learning rate with BatchNorm
frozen, and check what must hold.
"""

from harness import (
    beats,
    classifier_head,
    efficientnet_lite0,
    experiment,
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

IMAGE_SIZE = 160
PHASES = [
    feature_extraction(epochs=10, learning_rate=1e-3),
    fine_tune(unfreeze_from="block_11_", epochs=10, learning_rate=1e-4),
]
INVARIANTS = [frozen_weights_unchanged(), trainable_weights_changed(), loss_decreases()]

experiment(
    name="elpv_binary_lite0",
    dataset=tfds_dataset("elpv", label_key="defective", image_size=IMAGE_SIZE, test_split="test"),
    backbone=efficientnet_lite0(weights="imagenet"),
    head=classifier_head(dropout_rate=0.2),
    phases=PHASES,
    expect=[*INVARIANTS, trainable_params(feature_extraction=2_562, fine_tune=2_562),
            min_val_accuracy(0.5), min_test_accuracy(0.5)],
)

experiment(
    name="elpv_binary_scratch",
    dataset=tfds_dataset("elpv", label_key="defective", image_size=IMAGE_SIZE, test_split="test"),
    backbone=efficientnet_lite0(weights=None),
    head=classifier_head(dropout_rate=0.2),
    phases=PHASES,
    expect=[*INVARIANTS, min_val_accuracy(0.5)],
)

experiment(
    name="elpv_severity_lite0",
    dataset=tfds_dataset("elpv", label_key="label", image_size=IMAGE_SIZE, test_split="test"),
    backbone=efficientnet_lite0(weights="imagenet"),
    head=classifier_head(dropout_rate=0.2),
    phases=PHASES,
    expect=[*INVARIANTS, min_val_accuracy(0.5), beats("elpv_binary_scratch", margin=-1.0)],
)
