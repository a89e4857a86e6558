"""TFLite conversion of an exported SavedModel, with builtin ops only.

The `serving_default` signature of a SavedModel of `sact_tf.export.
saved_model` is converted (the `serving_bytes` signature decodes images,
which TFLite cannot); the `.tflite` file keeps its name, inputs and outputs,
so `Interpreter(...).get_signature_runner()(images=...)` returns the same
dict as the SavedModel. Only TFLite's builtin kernels are allowed: a graph
that would need the Flex delegate (TensorFlow kernels inside TFLite) is an
error that names the ops, never a silently larger, less portable file.
"""

import os
import tempfile

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.lite.python import convert_phase

from sact_tf.sparse import block as sparse_block
from sact_tf.export import saved_model as saved_model_lib
from sact_tf.utils import files

QUANTIZATIONS = ("none", "dynamic_range")


def convert_saved_model(saved_model_dir, quantize="none",
                        signature_key=saved_model_lib.SERVING_DEFAULT):
  """Converts one signature of a SavedModel to a TFLite flatbuffer.

  Args:
    saved_model_dir: str, a SavedModel directory (one version, `BASE/1`).
    quantize: str. `"none"` keeps float32 weights; `"dynamic_range"` stores
      the weights as int8 and quantizes activations on the fly where a
      kernel supports it (about 4 times smaller). Defaults to `"none"`.
    signature_key: str. Defaults to `"serving_default"`.

  Returns:
    bytes, the `.tflite` model.

  Raises:
    ValueError: no SavedModel there (with a hint when it is a TF Serving base
      directory), no such signature (the converter's error), an unknown `quantize`, or the graph needs
      ops that TFLite has no builtin kernel for (each named).
  """
  if quantize not in QUANTIZATIONS:
    raise ValueError(f"quantize must be one of {QUANTIZATIONS}, received "
                     f"quantize={quantize!r}")
  if not tf.saved_model.contains_saved_model(saved_model_dir):
    versions = saved_model_lib.existing_versions(saved_model_dir)
    hint = (f"; it is a TF Serving base directory, pass one of its versions, "
            f"e.g. {saved_model_lib.version_path(saved_model_dir, versions[-1])}"
            if versions else "")
    raise ValueError(f"no SavedModel in {saved_model_dir!r}{hint}")
  with tempfile.TemporaryDirectory() as tmp:
    return _convert(_inlinable(saved_model_dir, tmp), saved_model_dir,
                    quantize, signature_key)


def _inlinable(saved_model_dir, tmp):
  """The SavedModel with no function marked not to be inlined.

  Sparse SACT blocks call their skip segments as functions that TensorFlow
  must not inline (`sparse_block.NOINLINE_ATTRIBUTE`, a hint to TF's graph
  executor); TFLite's converter cannot convert such calls. When there are
  any, a copy of the graph without the marks is written to `tmp`, next to
  links to the original variables and assets.

  Returns:
    str, `saved_model_dir` or `tmp`.
  """
  path = os.path.join(saved_model_dir, "saved_model.pb")
  if not os.path.exists(path):  # A text SavedModel: converted as it is.
    return saved_model_dir
  proto = saved_model_pb2.SavedModel()
  with open(path, "rb") as f:
    proto.ParseFromString(f.read())
  marked = [function.attr for meta_graph in proto.meta_graphs
            for function in meta_graph.graph_def.library.function
            if sparse_block.NOINLINE_ATTRIBUTE in function.attr]
  if not marked:
    return saved_model_dir
  for attr in marked:
    del attr[sparse_block.NOINLINE_ATTRIBUTE]
  with open(os.path.join(tmp, "saved_model.pb"), "wb") as f:
    f.write(proto.SerializeToString())
  for name in ("variables", "assets"):
    if os.path.exists(os.path.join(saved_model_dir, name)):
      os.symlink(os.path.abspath(os.path.join(saved_model_dir, name)),
                 os.path.join(tmp, name))
  return tmp


def _convert(path, saved_model_dir, quantize, signature_key):
  """`convert_saved_model` of the SavedModel at `path` (errors name
  `saved_model_dir`, the directory the caller passed)."""
  converter = tf.lite.TFLiteConverter.from_saved_model(
      path, signature_keys=[signature_key])
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  if quantize == "dynamic_range":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  try:
    return converter.convert()
  except convert_phase.ConverterError as e:
    ops = {}  # op name -> the first graph node that uses it
    for error in e.errors:
      if error.operator.name:
        calls = error.location.call
        ops.setdefault(error.operator.name,
                       calls[0].name.split("@")[0] if calls else "?")
    if not ops:
      raise ValueError(f"TFLite conversion of {saved_model_dir!r} failed: "
                       f"{str(e).strip().splitlines()[0]}") from e
    raise ValueError(
        f"{saved_model_dir!r} needs ops that TFLite has no builtin kernel "
        f"for (they would need the Flex delegate): " + ", ".join(
            f"{op} (at {node})" for op, node in sorted(ops.items()))) from e


def write_tflite(saved_model_dir, output, quantize="none", overwrite=False):
  """Converts a SavedModel and writes the `.tflite` file atomically.

  Args:
    saved_model_dir: str, see `convert_saved_model`.
    output: str, the `.tflite` file (ending in `.tflite`); its directory
      must exist.
    quantize: str, see `convert_saved_model`.
    overwrite: bool, replace an existing `output`. Defaults to False.

  Returns:
    int, the size of the file in bytes.
  """
  if not output.endswith(".tflite"):
    raise ValueError(f"the output must end in .tflite, received {output!r}")
  files.check_writable_output(output, overwrite)
  model = convert_saved_model(saved_model_dir, quantize)
  with files.atomic_output(output, overwrite) as tmp:
    with open(tmp, "wb") as f:
      f.write(model)
  return os.path.getsize(output)
