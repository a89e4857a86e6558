"""Folding a model's batch norms into its weights, for inference.

Where a batch norm at inference, `y = x * s + o` per channel
(`sparse.rows.inference_affine`), folds exactly:

* after a convolution (`MaskedConv2D` with `batch_norm`, the units' inner
  convs): `conv(x, W) * s + o = conv(x, W * s) + o`, the kernel scaled per
  output channel and `o` its biases; the activations follow as before;
* before a 1x1 convolution of a 1x1 map with no activation between (the
  ImageNet halting heads' `global_bn`, on the pooled unit output):
  `(x * s + o) W + b = x (s W) + (o W + b)`.

Not exactly elsewhere, so kept as one multiply-add with precomputed
`(s, o)` (`ChannelAffine`): `preact` (the unit input is a shortcut plus a
residual, not one convolution's output; its ReLU follows), a halting
head's `local_bn` (a 3x3 SAME convolution follows, whose zero padding the
folded offset would miss at the border; sparse execution folds it into
the halting taps, which are summed over in-image neighbours only), the
CIFAR heads' batch norms (a leaky ReLU follows) and the networks' final
batch norms (`postnorm`, `BatchNorm`).
"""

import tensorflow as tf

from sact_tf.layers.spatial_halting_head import SpatialHaltingHead
from sact_tf.models.cifar_resnet import CifarResNet
from sact_tf.models.imagenet_resnet import ImageNetResNet
from sact_tf.sparse import rows as rows_lib

MODEL_CLASSES = (CifarResNet, ImageNetResNet)


# The model types whose units `optimize` folds (the sampling family's units
# keep their batch norms).
FOLDABLE_TYPES = ("vanilla", "act", "act_early_stopping", "sact")


def optimize(model):
  """The inference-optimised copy of `model` (see the package docstring).

  Args:
    model: a built `CifarResNet` or `ImageNetResNet` with its weights, not
      itself folded; any model type and execution.

  Returns:
    A new model of the same class and configuration with
    `folded_batch_norm=True`, built, its weights folded from `model`'s
    (`fold_weights`). Its outputs dict has the same keys, the same FLOPs,
    and values equal up to float32 rounding. Folding is for inference: the
    copy has no batch statistics to train.
  """
  _check_model(model, "model")
  if model.folded_batch_norm:
    raise ValueError(f"model {model.name!r} is folded already")
  config = dict(model.get_config(), folded_batch_norm=True)
  optimized = type(model).from_config(config)
  optimized.build((None, None, None, 3))
  fold_weights(model, optimized)
  return optimized


def fold_weights(model, optimized):
  """Sets `optimized`'s weights to `model`'s, batch norms folded.

  For a model whose weights changed after `optimize` (a retuned halting
  bias): the copy follows without being rebuilt (or retraced).

  Args:
    model: a built, unfolded `CifarResNet` or `ImageNetResNet`.
    optimized: a built folded model of the same configuration.
  """
  _check_model(model, "model")
  _check_model(optimized, "optimized")
  expected = dict(model.get_config(), folded_batch_norm=True)
  received = optimized.get_config()
  mismatched = sorted(k for k in expected if k not in ("name", "execution",
                                                       "sparse_config")
                      and expected[k] != received.get(k))
  if type(optimized) is not type(model) or mismatched:
    raise ValueError(
        f"optimized must be the folded form of model, received a "
        f"{type(optimized).__name__} differing in {mismatched}")
  _fold_conv(model.root_conv, optimized.root_conv)
  for block, folded_block in zip(model.blocks, optimized.blocks):
    for unit, folded_unit in zip(block.units, folded_block.units):
      _fold_residual_unit(unit.residual_unit, folded_unit.residual_unit)
      if unit.halting_head is not None:
        _fold_halting_head(unit.halting_head, folded_unit.halting_head)
  if model.include_head:
    _set_affine(_head_batch_norm(model), _head_batch_norm(optimized))
    _fold_conv(model.logits_conv, optimized.logits_conv)


def _check_model(model, name):
  if not isinstance(model, MODEL_CLASSES) or not model.built:
    raise ValueError(
        f"{name} must be a built CifarResNet or ImageNetResNet, received "
        f"{model!r}")
  if model.model_type not in FOLDABLE_TYPES:
    raise ValueError(f"{name} must be one of the model types "
                     f"{FOLDABLE_TYPES}, received model_type="
                     f"{model.model_type!r} (its units are not folded)")


def _head_batch_norm(model):
  """The batch norm of the network's head (before the logits)."""
  return model.postnorm if isinstance(model, ImageNetResNet) else model.head_bn


def _fold_residual_unit(unit, folded):
  _set_affine(unit.preact, folded.preact)
  for conv, folded_conv in zip(unit.convs, folded.convs):
    _fold_conv(conv, folded_conv)
  shortcut = getattr(unit, "shortcut_conv", None)
  if shortcut is not None:
    _fold_conv(shortcut, folded.shortcut_conv)


def _fold_halting_head(head, folded):
  if isinstance(head, SpatialHaltingHead):
    _set_affine(head.local_bn, folded.local_bn)
    _fold_conv(head.local_conv, folded.local_conv)
  if folded.global_bn is None:
    _fold_conv(head.global_conv, folded.global_conv,
               before=rows_lib.inference_affine(head.global_bn))
  else:
    _set_affine(head.global_bn, folded.global_bn)
    _fold_conv(head.global_conv, folded.global_conv)


def _set_affine(batch_norm, affine):
  """A `ChannelAffine`'s weights from a batch norm's moving statistics."""
  scale, offset = rows_lib.inference_affine(batch_norm)
  affine.scale.assign(scale)
  affine.offset.assign(offset)


def _fold_conv(conv, folded, before=None):
  """`folded`'s kernel and biases: `conv`'s with its batch norm folded.

  Args:
    conv: a built `MaskedConv2D`.
    folded: the same conv without `batch_norm`, with biases where `conv`
      has a batch norm, biases or `before`.
    before: optional `(scale, offset)` `[c_in]`, an affine map applied to a
      1x1 conv's input, folded in as well.
  """
  kernel = conv.kernel
  bias = conv.bias if conv.use_bias else tf.zeros([conv.filters])
  if before is not None:
    scale, offset = before
    bias += tf.reshape(tf.matmul(offset[None], tf.reshape(
        kernel, [-1, conv.filters])), [conv.filters])
    kernel = kernel * scale[:, None]
  if conv.normalizer is not None:
    scale, offset = rows_lib.inference_affine(conv.normalizer)
    kernel, bias = kernel * scale, bias * scale + offset
  folded.kernel.assign(kernel)
  if folded.use_bias:
    folded.bias.assign(bias)
