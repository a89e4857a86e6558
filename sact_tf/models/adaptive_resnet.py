"""Base class of the ACT/SACT residual networks."""

import keras
import tensorflow as tf

from sact_tf import act
from sact_tf import sampling
from sact_tf.layers.adaptive_block import HALTING_TYPES
from sact_tf.layers.adaptive_block import AdaptiveBlock
from sact_tf.layers.adaptive_block import check_execution
from sact_tf.layers.adaptive_block import check_model_type
from sact_tf.layers.global_halting_head import GlobalHaltingHead
from sact_tf.layers.halting_unit import HaltingUnit
from sact_tf.layers.sampling_mask import EVALUATIONS
from sact_tf.layers.sampling_unit import SamplingUnit
from sact_tf.layers.spatial_halting_head import SpatialHaltingHead
from sact_tf.models import stochastic_depth as stochastic_depth_lib
from sact_tf.sparse.sparse_config import SparseConfig

INPUT_CHANNELS = 3


def nearest_indices(in_size, out_size):
  """Source index of each output index of a nearest-neighbour resize.

  TF1 `resize_nearest_neighbor` without `align_corners` or half-pixel
  centres: `min(floor(i * (in / out)), in - 1)`, the product and the scale
  in float32 as its kernel computes them.

  Args:
    in_size, out_size: int32 scalar tensors.

  Returns:
    int32 `[out_size]`.
  """
  scale = tf.cast(in_size, tf.float32) / tf.cast(out_size, tf.float32)
  source = tf.floor(tf.cast(tf.range(out_size), tf.float32) * scale)
  return tf.minimum(tf.cast(source, tf.int32), in_size - 1)


def upsample_nearest(block_map, size):
  """TF1 `resize_nearest_neighbor` of a `[batch, h, w]` map to `size`.

  The same values as the resize op (`align_corners=False`, no half-pixel
  centres). Where the shapes are known when the graph is built and `size`
  is a power-of-two multiple of the map's (the ResNets' maps, at any input
  size divisible by 32), the source index `floor(i * (h / H))` is exactly
  `i // (H / h)` and every value is repeated over its block by one
  broadcast; otherwise two row gathers (`nearest_indices`), the second on
  the transposed map. Neither is slower than the resize op on CPU
  (`docs/benchmarks.md`).

  Args:
    block_map: `[batch, h, w]` tensor.
    size: `[2]` int32 tensor, the output height and width.

  Returns:
    `[batch, size[0], size[1]]`, the dtype of `block_map`.
  """
  factors = _power_of_two_factors(block_map.shape[1:3],
                                  tf.get_static_value(size))
  if factors is not None:
    batch, height, width = tf.unstack(tf.shape(block_map))
    blocks = tf.broadcast_to(
        block_map[:, :, None, :, None],
        [batch, height, factors[0], width, factors[1]])
    return tf.reshape(blocks, [batch, height * factors[0],
                               width * factors[1]])
  shape = tf.shape(block_map)
  rows = tf.gather(block_map, nearest_indices(shape[1], size[0]), axis=1)
  columns = tf.gather(tf.transpose(rows, [0, 2, 1]),
                      nearest_indices(shape[2], size[1]), axis=1)
  return tf.transpose(columns, [0, 2, 1])


def _power_of_two_factors(map_size, size):
  """`size / map_size` per axis if both are known and powers of two."""
  if size is None or None in tuple(map_size):
    return None
  factors = []
  for out, source in zip(size, map_size):
    factor, remainder = divmod(int(out), int(source))
    if remainder or factor & (factor - 1):
      return None
    factors.append(factor)
  return factors


def sact_map(block_maps, size, dtype=tf.float32):
  """The original `summary_utils.sact_map`: per-block maps summed at `size`.

  Args:
    block_maps: list of `[batch, h_k, w_k]` tensors (ponder cost or number of
      units of each block).
    size: `[2]` int32 tensor, the input height and width.
    dtype: the output dtype. Defaults to float32.

  Returns:
    `dtype` `[batch, H, W, 1]`: every map upsampled to the input size by
    nearest neighbour (`upsample_nearest`), then summed.
  """
  return tf.expand_dims(tf.add_n([
      upsample_nearest(tf.cast(m, dtype), size) for m in block_maps]), -1)


class AdaptiveResNet(keras.Model):
  """A residual network whose blocks are `AdaptiveBlock`s.

  Subclasses fix the architecture: the residual unit class and its arguments
  per block (`_block_specs`), the root (`_root`) and the head (`_head`).

  Args:
    model: str, int or list of ints. Depth as in the original (see
      `sact_tf.models.depths`).
    num_classes: int. Number of logits.
    model_type: str. `"vanilla" | "act" | "act_early_stopping" | "sact" |
      "sampling"`.
    base_channels: int. Width of the first block.
    tau: float or None. Ponder cost weight: when set (and the model is not
      vanilla), `tau * sum over blocks of the mean ponder cost` (eq. (8) of
      the paper) is added to the model losses, so `fit` trains the halting.
    eps: float. Halting threshold `1 - eps`.
    weight_decay: float. L2 weight decay of every convolution kernel.
    execution: str. `"dense"` (the original's masked computation) or
      `"sparse"` (SACT computes only the active positions at inference).
    sparse_config: `sact_tf.sparse.SparseConfig`, its `to_dict()` dict, or
      None for the defaults: the kernels (`"auto"`: XLA where a GPU is
      visible, TensorFlow's on CPU) and thresholds of sparse execution.
    stochastic_depth: float in (0, 1]. `p_L`, the survival probability of
      the last unit under stochastic depth (vanilla only; see
      `sact_tf.models.stochastic_depth`); 1 is the plain network.
    unit_order: dict or None. `{block name: [unit numbers, 1-based, in the
      order they run]}` for the blocks whose units are deleted or
      reordered (vanilla only; see `sact_tf.models.lesion`); None: none.
    folded_batch_norm: bool. The inference form that
      `sact_tf.inference.optimize` builds: every batch norm after a
      convolution folded into its kernel and biases, the others
      `ChannelAffine` multiply-adds (see the unit and head classes).
    sparse_loss_weight: float >= 0 or None. Sampling: when set, this
      weight times the sparse loss averaged over every unit of the network
      (`0.25 mean(sigmoid(m1)) + 0.75 mean(sigmoid(m2))` per unit, Xie et
      al. eq. (6)) is added to the model losses.
    grid_stride: int >= 1. Sampling: every `grid_stride`-th row and column
      is always sampled (`sact_tf.sampling.DEFAULT_GRID_STRIDE`).
    sampling_evaluation: str. Sampling: `"deterministic"`
      (`sigmoid(logit) >= 0.5`) or `"noisy"` (the reference's Gumbel sample
      at temperature 0.03) masks at inference.
    include_head: bool. False leaves out the classification head (its
      layers, `logits`, `predictions` and its FLOPs): the network as a
      feature extractor, e.g. a detection backbone. Defaults to True.

  Call arguments:
    images: float32 `[batch, H, W, 3]`.
    training: bool.

  Returns:
    dict of tensors, the original's end points: `logits` `[batch, classes]`,
    `predictions` (softmax), `flops` int64 `[batch]`; per block `<block>/flops`,
    `<block>/outputs` and (ACT/SACT) `<block>/ponder_cost`,
    `<block>/num_units`, `<block>/halting_distribution`; SACT also
    `ponder_cost_map` and `num_units_map` (`[batch, H, W, 1]`); sampling
    `<block>/sampling_density` (`[batch, h, w]`, the block's mean sampled
    fraction), `<block>/sparse_loss` (`[batch]`) and
    `sampling_density_map` (`[batch, H, W, 1]`, the blocks' densities
    upsampled to the input size and averaged, in `[0, 1]`). Without the
    head, `flops` counts the root and the blocks only.
  """

  unit_class = None
  halting_activation = None

  def __init__(self, model, num_classes, model_type, base_channels, tau,
               eps, weight_decay, execution, sparse_config, batch_norm,
               stochastic_depth=1.0, unit_order=None, folded_batch_norm=False,
               sparse_loss_weight=None,
               grid_stride=sampling.DEFAULT_GRID_STRIDE,
               sampling_evaluation="deterministic", include_head=True,
               **kwargs):
    super().__init__(**kwargs)
    stochastic_depth = stochastic_depth_lib.check_survival(stochastic_depth)
    check_model_type(model_type)
    check_execution(execution)
    if int(num_classes) < 1:
      raise ValueError(
          f"num_classes must be positive, received num_classes={num_classes!r}")
    if int(base_channels) < 1:
      raise ValueError(f"base_channels must be positive, received "
                       f"base_channels={base_channels!r}")
    if tau is not None and not tau >= 0:
      raise ValueError(f"tau must be >= 0, received tau={tau!r}")
    if sparse_loss_weight is not None and not sparse_loss_weight >= 0:
      raise ValueError(f"sparse_loss_weight must be >= 0, received "
                       f"sparse_loss_weight={sparse_loss_weight!r}")
    sampling.check_grid_stride(grid_stride)
    if sampling_evaluation not in EVALUATIONS:
      raise ValueError(f"sampling_evaluation must be one of {EVALUATIONS}, "
                       f"received sampling_evaluation={sampling_evaluation!r}")
    if not 0 <= eps < 1:
      raise ValueError(f"eps must be in [0, 1), received eps={eps!r}")
    if not weight_decay >= 0:
      raise ValueError(
          f"weight_decay must be >= 0, received weight_decay={weight_decay!r}")
    self.model = model
    self.num_classes = int(num_classes)
    self.model_type = model_type
    self.base_channels = int(base_channels)
    self.tau = tau
    self.eps = eps
    self.weight_decay = weight_decay
    self.execution = execution
    self.sparse_config = SparseConfig.create(sparse_config)
    self.include_head = bool(include_head)
    self._batch_norm = batch_norm
    self.stochastic_depth = stochastic_depth
    specs = self._block_specs()
    unit_order = dict(unit_order or {})
    unknown = set(unit_order) - {name for name, _ in specs}
    if unknown:
      raise ValueError(f"unit_order names blocks {sorted(unknown)}; the "
                       f"blocks are {[name for name, _ in specs]}")
    self.unit_order = {name: [int(u) for u in order]
                       for name, order in unit_order.items()} or None
    survival = stochastic_depth_lib.survival_probabilities(
        [len(unit_args) for _, unit_args in specs], stochastic_depth)
    self.folded_batch_norm = bool(folded_batch_norm)
    self.sparse_loss_weight = sparse_loss_weight
    self.grid_stride = grid_stride
    self.sampling_evaluation = sampling_evaluation
    self.blocks = [
        self._make_block(name, unit_args, p, unit_order.get(name))
        for (name, unit_args), p in zip(specs, survival)]

  def _make_block(self, name, unit_args, survival=None, unit_order=None):
    units = []
    for index, args in enumerate(unit_args):
      head = None
      if self.model_type in HALTING_TYPES and index < len(unit_args) - 1:
        head_class = (SpatialHaltingHead if self.model_type == "sact"
                      else GlobalHaltingHead)
        head = head_class(activation=self.halting_activation,
                          batch_norm=self._batch_norm,
                          weight_decay=self.weight_decay,
                          folded_batch_norm=self.folded_batch_norm)
      residual_unit = self.unit_class(
          **args, batch_norm=self._batch_norm, weight_decay=self.weight_decay,
          folded_batch_norm=self.folded_batch_norm)
      if self.model_type == "sampling":
        units.append(SamplingUnit(
            residual_unit, self.grid_stride, self.sampling_evaluation,
            self.weight_decay, name=f"unit_{index + 1}"))
      else:
        units.append(HaltingUnit(residual_unit, head,
                                 name=f"unit_{index + 1}"))
    return AdaptiveBlock(
        units, self.model_type, self.eps, self.execution, self.sparse_config,
        survival_probabilities=(
            survival if self.stochastic_depth < 1 else None),
        unit_order=(None if unit_order is None else
                    [u - 1 for u in unit_order]),
        name=name)

  def _block_specs(self):
    """List of `(block name, [unit kwargs per unit])`."""
    raise NotImplementedError(f"{type(self).__name__} must define _block_specs")

  def _build_root(self, input_shape):
    """Builds the root layers; returns the shape of their output."""
    raise NotImplementedError(f"{type(self).__name__} must define _build_root")

  def _build_head(self, input_shape):
    raise NotImplementedError(f"{type(self).__name__} must define _build_head")

  def _root(self, images, training):
    """Returns `(features, flops)`."""
    raise NotImplementedError(f"{type(self).__name__} must define _root")

  def _head(self, features, training):
    """Returns `(logits [batch, num_classes], flops)`."""
    raise NotImplementedError(f"{type(self).__name__} must define _head")

  def _check_images_shape(self, shape):
    shape = tuple(shape)
    if len(shape) != 4 or shape[-1] != INPUT_CHANNELS:
      raise ValueError(
          f"{type(self).__name__} takes images of shape [batch, height, width, "
          f"{INPUT_CHANNELS}], received shape {shape}")

  def build(self, input_shape):
    self._check_images_shape(input_shape)
    shape = self._build_root(input_shape)
    for block in self.blocks:
      block.build(shape)
      for unit in block.units:
        shape = unit.residual_unit.compute_output_shape(shape)[0]
    if self.include_head:
      self._build_head(shape)

  def call(self, images, training=None):
    self._check_images_shape(images.shape)
    images = tf.cast(images, self.compute_dtype)
    features, flops = self._root(images, training)
    outputs = {}
    for block in self.blocks:
      result = block(features, training=training)
      features = result.pop("outputs")
      outputs[f"{block.name}/outputs"] = features
      for key, value in result.items():
        outputs[f"{block.name}/{key}"] = value
      flops += result["flops"]
    outputs["flops"] = flops
    if self.include_head:
      logits, head_flops = self._head(features, training)
      # Under mixed precision the outputs stay float32, as Keras advises.
      logits = tf.cast(logits, act.halting_dtype(logits.dtype))
      outputs["logits"] = logits
      outputs["predictions"] = tf.nn.softmax(logits)
      outputs["flops"] += head_flops
    size = tf.shape(images)[1:3]
    if self.model_type == "sampling":
      self._sampling_outputs(outputs, size)
    if self.model_type in HALTING_TYPES:
      ponder_costs = [outputs[f"{b.name}/ponder_cost"] for b in self.blocks]
      if self.tau is not None:
        self.add_loss(self.tau * tf.add_n(
            [tf.reduce_mean(p) for p in ponder_costs]))
    if self.model_type == "sact":
      dtype = ponder_costs[0].dtype
      outputs["ponder_cost_map"] = sact_map(ponder_costs, size, dtype)
      outputs["num_units_map"] = sact_map(
          [outputs[f"{b.name}/num_units"] for b in self.blocks], size, dtype)
    return outputs

  def _sampling_outputs(self, outputs, size):
    """Adds `sampling_density_map` and the sparse loss (if weighted)."""
    densities = [outputs[f"{b.name}/sampling_density"] for b in self.blocks]
    outputs["sampling_density_map"] = sact_map(
        densities, size, densities[0].dtype) / len(densities)
    if self.sparse_loss_weight is not None:
      num_units = sum(len(b.units) for b in self.blocks)
      self.add_loss(self.sparse_loss_weight * tf.add_n(
          [tf.reduce_mean(outputs[f"{b.name}/sparse_loss"])
           for b in self.blocks]) / num_units)

  def get_config(self):
    return {
        "name": self.name, "trainable": self.trainable, "model": self.model,
        "num_classes": self.num_classes, "model_type": self.model_type,
        "base_channels": self.base_channels, "tau": self.tau,
        "eps": self.eps, "weight_decay": self.weight_decay,
        "execution": self.execution,
        "sparse_config": self.sparse_config.to_dict(),
        "stochastic_depth": self.stochastic_depth,
        "unit_order": self.unit_order,
        "folded_batch_norm": self.folded_batch_norm,
        "sparse_loss_weight": self.sparse_loss_weight,
        "grid_stride": self.grid_stride,
        "sampling_evaluation": self.sampling_evaluation,
        "include_head": self.include_head,
    }
