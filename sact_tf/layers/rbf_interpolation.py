"""The interpolation module of the sampling family."""

import keras

from sact_tf import sampling


@keras.saving.register_keras_serializable(package="sact_tf")
class RbfInterpolation(keras.layers.Layer):
  """Reconstructs the positions a mask skipped (Xie et al., sec. 3.3).

  `out = M F + (1 - M) (K * (M F)) / (K * M + 1e-5)` with the RBF kernel
  `K(d) = exp(-lambda |d|^2)` on a 7x7 window, depthwise
  (`sampling.interpolate`); `lambda` is learned (one per mask), kept
  non-negative so that the kernel decays with distance.

  Args:
    kernel_size: odd int >= 1. Defaults to 7.
    initial_lambda: float >= 0. Defaults to `sampling.INITIAL_LAMBDA` (0.5).

  Call arguments:
    features: float `[batch, h, w, c]`.
    mask: float `[batch, h, w, 1]` in `[0, 1]`.

  Returns:
    float `[batch, h, w, c]`.
  """

  def __init__(self, kernel_size=sampling.KERNEL_SIZE,
               initial_lambda=sampling.INITIAL_LAMBDA, **kwargs):
    super().__init__(**kwargs)
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or (
        kernel_size < 1 or kernel_size % 2 == 0):
      raise ValueError(f"kernel_size must be an odd integer >= 1, received "
                       f"kernel_size={kernel_size!r}")
    if not (isinstance(initial_lambda, (int, float)) and initial_lambda >= 0):
      raise ValueError(f"initial_lambda must be >= 0, received "
                       f"initial_lambda={initial_lambda!r}")
    self.kernel_size = kernel_size
    self.initial_lambda = float(initial_lambda)

  def build(self, input_shape):
    self.lam = self.add_weight(
        name="rbf_lambda", shape=(),
        initializer=keras.initializers.Constant(self.initial_lambda),
        constraint=keras.constraints.NonNeg())

  def call(self, features, mask):
    return sampling.interpolate(features, mask, self.lam, self.kernel_size)

  def flops(self, mask, channels):
    """FLOPs of interpolating `channels` channels only where `mask` skips.

    See `sampling.interpolation_flops`; int64 `[batch]`.
    """
    return sampling.interpolation_flops(mask, channels, self.kernel_size)

  def compute_output_shape(self, input_shape, mask_shape=None):
    return input_shape

  def get_config(self):
    config = super().get_config()
    config.update(kernel_size=self.kernel_size,
                  initial_lambda=self.initial_lambda)
    return config
