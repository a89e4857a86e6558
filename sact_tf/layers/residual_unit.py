"""Base class of the pre-activation residual units."""

import keras

import tensorflow as tf

from sact_tf.layers import activations
from sact_tf.layers import normalization
from sact_tf.sparse import active_set


class ResidualUnit(keras.layers.Layer):
  """A pre-activation residual unit, `F' = shortcut(F) + f(F)` (eq. (1)).

  `preact` (batch norm + activation) feeds the residual branch `f`, a chain
  of `MaskedConv2D` layers in `self.convs`. Given a `residual_mask` of the
  positions still active (SACT units after the first of a block), the
  residual is multiplied by it, so halted positions keep their state; the
  FLOPs of the first conv are counted on the 3x3-dilated mask and those of
  the later convs on the mask itself, as in the original (the convolutions
  are still computed everywhere: this is the dense, masked execution).

  Subclasses create `self.convs` and implement `shortcut`.

  Args:
    depth: int. Output channels.
    stride: int. Stride of the unit (1 or 2). Defaults to 1.
    activation: str. Activation of `preact` and of the convs.
    batch_norm: dict. `{"momentum", "epsilon"}`.
    weight_decay: float. L2 decay of the conv kernels.
    folded_batch_norm: bool. The inference form
      (`sact_tf.inference.optimize`): the batch norms after a convolution
      folded into its kernel and biases, `preact` a `ChannelAffine`.
      Defaults to False.

  Call arguments:
    inputs: float32 `[batch, H, W, c_in]`.
    residual_mask: optional float32 `[batch, H, W, 1]`; needs stride 1.
    training: bool.
    dilated_mask: optional float32 `[batch, H, W, 1]`, the 3x3 dilation of
      `residual_mask` when it is already known.

  Returns:
    `(outputs, flops)`: float32 `[batch, H / stride, W / stride, depth]`,
    int64 `[batch]`.
  """

  def __init__(self, depth, stride=1, activation="relu",
               batch_norm=normalization.IMAGENET_BATCH_NORM, weight_decay=0.0,
               folded_batch_norm=False, **kwargs):
    super().__init__(**kwargs)
    if int(depth) < 1:
      raise ValueError(f"depth must be positive, received depth={depth!r}")
    if int(stride) not in (1, 2):
      raise ValueError(f"stride must be 1 or 2, received stride={stride!r}")
    self.depth = int(depth)
    self.stride = int(stride)
    self.activation = activation
    self.batch_norm = dict(batch_norm)
    self.weight_decay = weight_decay
    self.folded_batch_norm = bool(folded_batch_norm)
    self.activation_fn = activations.get(activation)
    self.preact = normalization.batch_norm("preact", self.batch_norm,
                                           self.folded_batch_norm)
    # The batch norm of the convs that have one (None where folded).
    self.conv_batch_norm = None if self.folded_batch_norm else self.batch_norm

  def build(self, input_shape):
    self.depth_in = int(input_shape[-1])
    self.preact.build(input_shape)
    shape = input_shape
    for conv in self.convs:
      conv.build(shape)
      shape = conv.compute_output_shape(shape)[0]

  def call(self, inputs, residual_mask=None, training=None, dilated_mask=None):
    outputs, _, flops = self.call_with_residual(inputs, residual_mask,
                                                training, dilated_mask)
    return outputs, flops

  def call_with_residual(self, inputs, residual_mask=None, training=None,
                         dilated_mask=None):
    """`call`, with the residual branch too.

    Returns:
      `(outputs, residual, flops)`: `outputs` and `flops` as `call`;
      `residual` float `[batch, h, w, depth]`, the residual branch (times
      `residual_mask` where given), `outputs` minus the shortcut.
    """
    if residual_mask is not None and self.stride != 1:
      raise ValueError(
          f"a residual_mask needs stride 1, the unit {self.name!r} has "
          f"stride={self.stride}")
    preact = self.preactivate(inputs, training)
    shortcut, flops = self.shortcut(inputs, preact, training)
    residual = preact
    for conv, mask in zip(self.convs,
                          self._conv_masks(residual_mask, dilated_mask)):
      residual, conv_flops = conv(residual, output_mask=mask,
                                  training=training)
      flops += conv_flops
    if residual_mask is not None:
      residual *= residual_mask
    return shortcut + residual, residual, flops

  def preactivate(self, inputs, training=None):
    """`preact` batch norm and the activation."""
    return self.activation_fn(self.preact(inputs, training=training))

  def _conv_masks(self, residual_mask, dilated_mask=None):
    """Output mask of each conv: the 3x3 dilation for the first."""
    if residual_mask is None:
      return [None] * len(self.convs)
    if dilated_mask is None:
      dilated_mask = active_set.dilate_mask(residual_mask)
    return [dilated_mask] + [residual_mask] * (len(self.convs) - 1)

  def masked_flops(self, input_shape, residual_mask, dilated_mask=None):
    """The FLOPs `call` counts with `residual_mask`, without computing.

    Args:
      input_shape: int `[4]` tensor, the unit's input shape (stride 1).
      residual_mask: float32 `[batch, H, W, 1]`.
      dilated_mask: optional float32 `[batch, H, W, 1]`, its 3x3 dilation
        when it is already known.

    Returns:
      int64 `[batch]`.
    """
    return tf.add_n([
        conv.flops(input_shape, mask)
        for conv, mask in zip(self.convs,
                              self._conv_masks(residual_mask, dilated_mask))])

  def compute_output_shape(self, input_shape, residual_mask=None):
    spatial = [None if d is None else -(-int(d) // self.stride)
               for d in input_shape[1:3]]
    return (input_shape[0], *spatial, self.depth), (input_shape[0],)

  def shortcut(self, inputs, preact, training=None):
    """The shortcut branch and its FLOPs (int64 `[batch]` or 0)."""
    raise NotImplementedError(f"{type(self).__name__} must define shortcut")

  def get_config(self):
    config = super().get_config()
    config.update(depth=self.depth, stride=self.stride,
                  activation=self.activation, batch_norm=self.batch_norm,
                  weight_decay=self.weight_decay,
                  folded_batch_norm=self.folded_batch_norm)
    return config
