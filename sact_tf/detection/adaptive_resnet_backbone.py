"""The ImageNet ACT / SACT ResNet as a feature pyramid for detection."""

import keras
from keras_hub.src.models.feature_pyramid_backbone import (
    FeaturePyramidBackbone)

from sact_tf import act
from sact_tf.models.imagenet_resnet import WEIGHT_DECAY
from sact_tf.models.imagenet_resnet import ImageNetResNet

# Pyramid level -> block: blocks 2-4 of the ImageNet ResNet have strides 8,
# 16 and 32 (level n: stride 2**n).
PYRAMID_BLOCKS = {"P3": "block2", "P4": "block3", "P5": "block4"}


@keras.saving.register_keras_serializable(package="sact_tf")
class AdaptiveResNetBackbone(FeaturePyramidBackbone):
  """An `ImageNetResNet` without its head, as a keras-hub image encoder.

  The feature extractor of the paper's detection experiments (section 5.3:
  a SACT ResNet-101 under a detector on COCO), built for keras-hub's
  `RetinaNetBackbone(image_encoder=...)`, which puts its feature pyramid
  network on `pyramid_outputs`: `P3`, `P4`, `P5` are the outputs of
  `block2`, `block3`, `block4` (strides 8, 16, 32), as the classification
  model's `<block>/outputs`. The halting stays as in classification: with
  `tau` set and a non-vanilla `model_type`, the ponder cost loss
  `tau * sum over blocks of the mean ponder cost` (eq. (8)) is a loss of
  the model, so a detector's `fit` trains it; SACT with
  `execution="sparse"` computes only the active positions at inference.

  Args:
    model: str, int or list. ResNet depth (`"50"`, `"101"`, `"a_b_c_d"`).
      Defaults to `"101"`.
    model_type: str. `"vanilla" | "act" | "act_early_stopping" | "sact"`.
      Defaults to `"sact"`.
    base_channels: int. Bottleneck width of block 1. Defaults to 64.
    tau: float or None. Ponder cost weight. Defaults to None.
    eps: float. Halting threshold `1 - eps`. Defaults to 0.01.
    weight_decay: float. L2 decay of the convolution kernels. Defaults to
      1e-4.
    execution: str. `"dense"` or `"sparse"`. Defaults to `"dense"`.
    sparse_config: `sact_tf.sparse.SparseConfig`, dict or None. Defaults to
      None.
    image_shape: tuple `(H, W, 3)`, `None` for any size. Defaults to
      `(None, None, 3)`.
    folded_batch_norm: bool. The inference form, batch norms folded into
      the convolutions (`sact_tf.inference`; `detector.optimize`).
      Defaults to False.

  Inputs: float32 `[batch, H, W, 3]`, scaled to [-1, 1] (the ImageNet
  models' preprocessing).

  Outputs: the dict of `ImageNetResNet` without `logits` / `predictions`:
  `<block>/outputs` (float32 `[batch, H / s, W / s, c]`), `flops` (int64
  `[batch]`, root and blocks), `<block>/flops`, and for ACT / SACT
  `<block>/ponder_cost`, `<block>/num_units`, `<block>/halting_distribution`;
  SACT also `ponder_cost_map`, `num_units_map` (float32 `[batch, H, W, 1]`).
  `pyramid_outputs`: `{"P3", "P4", "P5"}` of those tensors.
  """

  def __init__(self, model="101", model_type="sact", base_channels=64,
               tau=None, eps=act.DEFAULT_EPS, weight_decay=WEIGHT_DECAY,
               execution="dense", sparse_config=None,
               image_shape=(None, None, 3), folded_batch_norm=False,
               **kwargs):
    image_shape = tuple(image_shape)
    if len(image_shape) != 3 or image_shape[-1] != 3:
      raise ValueError(f"image_shape must be (height, width, 3), received "
                       f"image_shape={image_shape!r}")
    # num_classes is unused without the head.
    resnet = ImageNetResNet(
        model=model, num_classes=1, model_type=model_type,
        base_channels=base_channels, tau=tau, eps=eps,
        weight_decay=weight_decay, execution=execution,
        sparse_config=sparse_config, include_head=False,
        folded_batch_norm=folded_batch_norm)
    images = keras.Input(image_shape, name="images")
    outputs = dict(resnet(images))
    super().__init__(inputs=images, outputs=outputs, **kwargs)
    self.resnet = resnet
    self.model = model
    self.model_type = model_type
    self.base_channels = int(base_channels)
    self.tau = tau
    self.eps = eps
    self.weight_decay = weight_decay
    self.execution = execution
    self.sparse_config = resnet.sparse_config
    self.image_shape = image_shape
    self.folded_batch_norm = bool(folded_batch_norm)
    self.pyramid_outputs = {level: outputs[f"{block}/outputs"]
                            for level, block in PYRAMID_BLOCKS.items()}

  def get_config(self):
    config = super().get_config()
    config.update(
        model=self.model, model_type=self.model_type,
        base_channels=self.base_channels, tau=self.tau, eps=self.eps,
        weight_decay=self.weight_decay, execution=self.execution,
        sparse_config=self.sparse_config.to_dict(),
        image_shape=self.image_shape,
        folded_batch_norm=self.folded_batch_norm)
    return config
