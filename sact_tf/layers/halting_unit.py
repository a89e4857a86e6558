"""A residual unit together with its halting head."""

import keras

from sact_tf.layers.spatial_halting_head import SpatialHaltingHead



@keras.saving.register_keras_serializable(package="sact_tf")
class HaltingUnit(keras.layers.Layer):
  """One unit of an adaptive block: `F^l` and its halting probability `h^l`.

  The original `unit_act`: runs the residual unit, then, if the unit has a
  halting head (every unit of an ACT/SACT block but the last), predicts the
  halting probability from the unit's output. Named `unit_<l>` by the block.

  Args:
    residual_unit: `ResidualUnit` layer (`BasicResidualUnit` or
      `BottleneckUnit`).
    halting_head: `GlobalHaltingHead`, `SpatialHaltingHead` or None.
      Defaults to None.

  Call arguments:
    inputs: float32 `[batch, H, W, c_in]`, the block state.
    residual_mask: optional float32 `[batch, H, W, 1]`, the positions still
      active (SACT).
    training: bool.

  Returns:
    `(outputs, halting_proba, flops)`: the new state, the halting
    probability (`[batch, 1]`, `[batch, h, w, 1]` or None without a head) and
    the FLOPs of the unit and its head (int64 `[batch]`).
  """

  def __init__(self, residual_unit, halting_head=None, **kwargs):
    super().__init__(**kwargs)
    self.residual_unit = residual_unit
    self.halting_head = halting_head

  def build(self, input_shape):
    # Sub-layers restored by `from_config` may arrive built already.
    if not self.residual_unit.built:
      self.residual_unit.build(input_shape)
    if self.halting_head is not None and not self.halting_head.built:
      self.halting_head.build(
          self.residual_unit.compute_output_shape(input_shape)[0])

  def call(self, inputs, residual_mask=None, training=None):
    outputs, flops = self.residual_unit(
        inputs, residual_mask=residual_mask, training=training)
    if self.halting_head is None:
      return outputs, None, flops
    if isinstance(self.halting_head, SpatialHaltingHead):
      proba, head_flops = self.halting_head(
          outputs, residual_mask=residual_mask, training=training)
    else:
      proba, head_flops = self.halting_head(outputs, training=training)
    return outputs, proba, flops + head_flops

  def masked_flops(self, input_shape, residual_mask, dilated_mask=None):
    """`ResidualUnit.masked_flops` plus those of the halting head."""
    flops = self.residual_unit.masked_flops(input_shape, residual_mask,
                                            dilated_mask)
    if self.halting_head is not None:
      flops += self.halting_head.masked_flops(input_shape, residual_mask)
    return flops

  def get_config(self):
    config = super().get_config()
    config.update(
        residual_unit=keras.saving.serialize_keras_object(self.residual_unit),
        halting_head=keras.saving.serialize_keras_object(self.halting_head))
    return config

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    for key in ("residual_unit", "halting_head"):
      config[key] = keras.saving.deserialize_keras_object(config[key])
    return cls(**config)
