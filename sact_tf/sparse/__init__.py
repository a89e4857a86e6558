"""Sparse execution of SACT: computing only the positions not yet halted.

The original release computes every position of every unit and masks the
halted ones; this package computes a unit only where its positions are
active, with the same outputs and FLOPs up to float rounding. Its modules,
in the order the data flows through one block (`block.sparse_block`):

* `sparse_config.SparseConfig`: kernels, thresholds and capacity buckets,
  passed to the models (`sparse_config=`) and saved with them.
* `block`: the block driver. The first unit runs on the whole map; each
  later unit gets the mask of the positions not yet halted and runs dense
  (masked) where sparse execution cannot pay off, sparse otherwise, or not
  at all once every position has halted; the block output is accumulated
  in residual form from the units' residual rows and scattered once.
* `unit_step`: one unit, dense (`dense_unit`) or sparse (`sparse_unit`),
  as TensorFlow ops or one XLA-compiled function per unit.
* `active_set`: the active positions of a mask (`ActiveSet`): gather
  indices, padded-layout rows, ordinals, capacity buckets for XLA, and the
  3x3 dilation of a mask (what a unit's first conv must compute).
* `map_state`: the state passed between units (`MapState`): the map, its
  spatial mean, and the previous unit's residual rows not yet scattered.
* `residual_rows`: the residual branch on rows: each conv one matmul of
  gathered rows or 3x3 patches (`gather`), batch norm and activations on
  rows (`rows`).
* `halting_rows`: the halting head's 3x3 conv as taps summed over each
  active position's neighbours, its pooled term on `[batch, c]` rows.
* `gather`, `scatter`: the row gathers, patches, and scatters (TensorFlow's
  op or XLA-compiled, by size).

`docs/sparse_execution.md` walks through the same flow with the costs that
set the thresholds.
"""

from sact_tf.sparse.sparse_config import SparseConfig
