"""keras-hub's RetinaNet on an `AdaptiveResNetBackbone`, and its inference.

`build_detector` puts keras-hub's `RetinaNetBackbone` (a feature pyramid
network, 256 channels) and `RetinaNetObjectDetector` (focal loss, box
regression, non-maximum suppression) on the ACT / SACT ResNet; `detect`
returns the detections with the backbone's FLOPs and ponder cost map,
running the backbone once (`forward`).
"""

import math

import keras_hub
from keras_hub.src.layers.modeling.non_max_supression import (
    NonMaxSuppression)
import tensorflow as tf

from sact_tf import inference
from sact_tf.detection.adaptive_resnet_backbone import PYRAMID_BLOCKS
from sact_tf.detection.adaptive_resnet_backbone import AdaptiveResNetBackbone

BOX_FORMAT = "yxyx"
# RetinaNet's prior probability of an object at initialization.
PRIOR_PROBABILITY = 0.01
# Detections kept before non-maximum suppression: RetinaNet's 0.05 (keras-
# hub's default 0.5 drops the low-confidence detections COCO AP counts).
CONFIDENCE_THRESHOLD = 0.05
NMS_IOU_THRESHOLD = 0.5
MAX_DETECTIONS = 100


def build_detector(num_classes, backbone_kwargs, min_level=3, max_level=7,
                   anchor_size=4.0, head_conv_layers=4, fpn_batch_norm=True):
  """A `RetinaNetObjectDetector` with an `AdaptiveResNetBackbone`.

  Args:
    num_classes: int. Object classes (ids 0 .. num_classes - 1).
    backbone_kwargs: dict. `AdaptiveResNetBackbone` arguments (`model`,
      `model_type`, `base_channels`, `tau`, `execution`, ...).
    min_level, max_level: int. Feature pyramid levels (3-7 in RetinaNet;
      small images: 3-5). Level n has stride 2**n.
    anchor_size: float. Anchor side at level n is `anchor_size * 2**n`
      (times 2**(0, 1/3, 2/3), aspect ratios 0.5, 1, 2). Defaults to 4
      (RetinaNet's: 32-pixel anchors on P3).
    head_conv_layers: int. 3x3 convolutions of each prediction head before
      its output. Defaults to 4 (RetinaNet's).

  Returns:
    An unbuilt-to-data `RetinaNetObjectDetector` (`bounding_box_format`
    `"yxyx"`, pixels) whose `backbone.image_encoder` is the
    `AdaptiveResNetBackbone`.
  """
  if int(num_classes) < 1:
    raise ValueError(f"num_classes must be positive, received "
                     f"num_classes={num_classes!r}")
  if not 3 <= min_level <= 5 <= max_level:
    raise ValueError(f"pyramid levels need 3 <= min_level <= 5 <= max_level, "
                     f"received min_level={min_level!r}, "
                     f"max_level={max_level!r}")
  if not anchor_size > 0:
    raise ValueError(f"anchor_size must be positive, received "
                     f"anchor_size={anchor_size!r}")
  encoder = AdaptiveResNetBackbone(**backbone_kwargs)
  backbone = keras_hub.models.RetinaNetBackbone(
      image_encoder=encoder, min_level=min_level, max_level=max_level,
      use_p5=False, use_fpn_batch_norm=bool(fpn_batch_norm),
      image_shape=encoder.image_shape)
  anchors = keras_hub.layers.AnchorGenerator(
      BOX_FORMAT, min_level=min_level, max_level=max_level, num_scales=3,
      aspect_ratios=[0.5, 1.0, 2.0], anchor_size=anchor_size)
  detector = keras_hub.models.RetinaNetObjectDetector(
      backbone=backbone, num_classes=int(num_classes),
      bounding_box_format=BOX_FORMAT, anchor_generator=anchors,
      pre_logits_num_conv_layers=int(head_conv_layers),
      classification_head_prior_probability=PRIOR_PROBABILITY,
      prediction_decoder=NonMaxSuppression(
          bounding_box_format=BOX_FORMAT, from_logits=True,
          iou_threshold=NMS_IOU_THRESHOLD,
          confidence_threshold=CONFIDENCE_THRESHOLD,
          max_detections=MAX_DETECTIONS))
  # keras-hub 0.32 gives the prior-probability bias to the box head (box
  # deltas of -4.6, boxes 1% of their anchors) and none to the
  # classification head; RetinaNet's (Lin et al. 2017, section 4.1) is the
  # reverse: class logits start at -log((1 - pi) / pi), box deltas at 0.
  detector.box_head.prediction_layer.bias.assign(
      tf.zeros_like(detector.box_head.prediction_layer.bias))
  detector.classification_head.prediction_layer.bias.assign(
      tf.fill(detector.classification_head.prediction_layer.bias.shape,
              -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)))
  return detector


def image_encoder(detector):
  """The `AdaptiveResNetBackbone` of a `build_detector` detector."""
  return detector.backbone.image_encoder


def _rows(outputs, width):
  """`[batch, h, w, anchors * width]` -> `[batch, h * w * anchors, width]`.

  The row count stays static where `h` and `w` are, as keras-hub's
  non-maximum suppression needs it.
  """
  count = -1
  if None not in outputs.shape[1:]:
    count = outputs.shape[1] * outputs.shape[2] * outputs.shape[3] // width
  return tf.reshape(outputs, [tf.shape(outputs)[0], count, width])


def forward(detector, images):
  """The detector's head outputs and its image encoder's, one backbone pass.

  keras-hub's detector returns its head outputs only, so the encoder (with
  its FLOPs and ponder cost) is run here and its pyramid features are fed
  through the detector's own feature pyramid and heads, as the detector's
  functional graph feeds them (levels `min_level`..`max_level` in order,
  each head output flattened to rows of anchors and concatenated).

  Args:
    detector: a `build_detector` detector.
    images: float32 `[batch, H, W, 3]` in [-1, 1].

  Returns:
    `(predictions, features)`: `predictions` the detector's
    `{"bbox_regression": [batch, A, 4], "cls_logits": [batch, A, classes]}`
    (what `detector(images)` returns), `features` the encoder's outputs.
  """
  encoder = image_encoder(detector)
  features = encoder(images, training=False)
  backbone = detector.backbone
  top = min(max(int(level[1:]) for level in encoder.pyramid_outputs),
            backbone.max_level)
  pyramid = backbone.feature_pyramid(
      {f"P{level}": features[f"{PYRAMID_BLOCKS[f'P{level}']}/outputs"]
       for level in range(backbone.min_level, top + 1)}, training=False)
  boxes, logits = [], []
  for level in sorted(pyramid, key=lambda name: int(name[1:])):
    boxes.append(_rows(detector.box_head(pyramid[level]), 4))
    logits.append(_rows(detector.classification_head(pyramid[level]),
                        detector.num_classes))
  return ({"bbox_regression": tf.concat(boxes, 1),
           "cls_logits": tf.concat(logits, 1)}, features)


def _decode(detector, raw, images):
  """`decode_predictions`, image by image where the batch size is unknown.

  keras-hub's non-maximum suppression needs a static batch size, which a
  SavedModel signature (`[None, H, W, 3]`) does not have.
  """
  if images.shape[0] is not None:
    return detector.decode_predictions(raw, images)
  dtypes = {"boxes": tf.float32, "confidence": tf.float32,
            "labels": tf.int32, "num_detections": tf.int32}

  def one(args):
    predictions, image = args
    found = detector.decode_predictions(
        {k: v[None] for k, v in predictions.items()}, image[None])
    return {k: tf.cast(found[k][0], dtype) for k, dtype in dtypes.items()}

  return tf.map_fn(one, (raw, images), fn_output_signature={
      k: tf.TensorSpec(None, dtype) for k, dtype in dtypes.items()})


def detect(detector, images):
  """Detections and the backbone's computation, for a batch of images.

  The detector's forward pass (`forward`: the backbone runs once) and
  non-maximum suppression (`decode_predictions`, as `predict` runs it).

  Args:
    detector: a `build_detector` detector.
    images: float32 `[batch, H, W, 3]` in [-1, 1].

  Returns:
    dict: `boxes` float32 `[batch, K, 4]` (`yxyx` pixels, clipped to the
    image), `confidence` `[batch, K]`, `labels` int32 `[batch, K]` (-1
    padding), `num_detections` int32 `[batch]`, `flops` int64 `[batch]`
    (backbone); for ACT / SACT `<block>/ponder_cost` (float32 `[batch]`,
    SACT `[batch, h, w]`) and for SACT `ponder_cost_map` float32
    `[batch, H, W, 1]`.
  """
  images = tf.convert_to_tensor(images, tf.float32)
  raw, features = forward(detector, images)
  found = _decode(detector, raw, images)
  # Boxes clipped to the image, padding rows kept at -1.
  size = tf.cast(tf.shape(images)[1:3], tf.float32)
  limit = tf.concat([size, size], 0)
  boxes = tf.where(found["labels"][..., None] < 0, -1.0,
                   tf.clip_by_value(found["boxes"], 0.0, limit))
  outputs = {"boxes": boxes, "confidence": found["confidence"],
             "labels": tf.cast(found["labels"], tf.int32),
             "num_detections": tf.cast(found["num_detections"], tf.int32),
             "flops": features["flops"]}
  for key, value in features.items():
    if key.endswith("/ponder_cost") or key == "ponder_cost_map":
      outputs[key] = value
  return outputs


def _copy(detector, **backbone_kwargs):
  """A new detector of `detector`'s configuration, backbone args replaced."""
  kwargs = image_encoder(detector).get_config()
  for key in ("name", "trainable", "dtype"):
    kwargs.pop(key, None)
  kwargs.update(backbone_kwargs)
  return build_detector(
      detector.num_classes, kwargs, detector.backbone.min_level,
      detector.backbone.max_level, detector.anchor_generator.anchor_size,
      detector.pre_logits_num_conv_layers,
      detector.backbone.use_fpn_batch_norm)


def set_execution(detector, execution):
  """A copy of a detector whose backbone runs with `execution`.

  Args:
    detector: a `build_detector` detector (built).
    execution: str. `"dense"` or `"sparse"`.

  Returns:
    A new detector, same configuration and weights.
  """
  copy = _copy(detector, execution=execution)
  copy.set_weights(detector.get_weights())
  return copy


def optimize(detector):
  """The inference-optimised copy of a detector: its backbone's batch norms
  folded into the convolutions (`sact_tf.inference.optimize`).

  The feature pyramid and the heads keep their weights; the detections
  equal the detector's up to float32 rounding.

  Args:
    detector: a `build_detector` detector (built), backbone not folded.

  Returns:
    A new detector, `folded_batch_norm=True` in its backbone.
  """
  copy = _copy(detector, folded_batch_norm=True)
  for name in ("box_head", "classification_head"):
    getattr(copy, name).set_weights(getattr(detector, name).get_weights())
  copy.backbone.feature_pyramid.set_weights(
      detector.backbone.feature_pyramid.get_weights())
  inference.fold_weights(image_encoder(detector).resnet,
                         image_encoder(copy).resnet)
  return copy
