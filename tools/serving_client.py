"""Sends images to a model in TF Serving and prints its answers.

Over REST (JSON `instances`, port 8501) or gRPC (`PredictRequest`, port
8500), to the `serving_bytes` signature (the files are sent, the server
preprocesses them) or to `serving_default` (preprocessed here: give
`--family` and `--image_size`). Prints, per image, the top classes with
their probabilities (a detector: its detections, class, score and box
`[ymin, xmin, ymax, xmax]` in pixels), the FLOPs and, for ACT/SACT models,
the ponder cost of every block. Example, with TF Serving started as the
README shows:

  python tools/serving_client.py --model_name=sact --protocol=grpc \
      --images=cat.jpg,gasworks.jpg
"""

from sact_tf.utils import console  # pylint: disable=g-bad-import-order

console.quiet_tensorflow()  # Before TensorFlow is imported.

import glob
import sys

from absl import app
from absl import flags

from sact_tf.export import saved_model
from sact_tf.export import serving_client

FLAGS = flags.FLAGS
flags.DEFINE_list("images", None,
                  "Image files (JPEG or PNG) or glob patterns, "
                  "comma-separated.")
flags.DEFINE_string("model_name", "sact", "The model's name in TF Serving.")
flags.DEFINE_integer("model_version", None,
                     "A version of the model; default: the latest.")
flags.DEFINE_enum("protocol", "rest", list(serving_client.PROTOCOLS),
                  "rest (JSON) or grpc (PredictRequest).")
flags.DEFINE_string("server", None,
                    "host:port of TF Serving; default localhost:8501 (rest) "
                    "or localhost:8500 (grpc).")
flags.DEFINE_enum("signature_name", saved_model.SERVING_BYTES,
                  [saved_model.SERVING_BYTES, saved_model.SERVING_DEFAULT],
                  "serving_bytes: send the files; serving_default: send "
                  "preprocessed float images.")
flags.DEFINE_enum("family", None, list(serving_client.FAMILIES),
                  "The model's preprocessing, for serving_default "
                  "(detection: a detector's).")
flags.DEFINE_integer("image_size", None,
                     "The model's input size, for serving_default.")
flags.DEFINE_string("labels", None,
                    "A text file with one class name per line (line k: "
                    "class k), to print names with the class ids.")
flags.DEFINE_float("timeout", 60.0, "Seconds to wait for the answer.")
flags.mark_flags_as_required(["images"])


def _expand(patterns):
  paths = []
  for pattern in patterns:
    matches = sorted(glob.glob(pattern, recursive=True))
    if not matches:
      raise ValueError(f"no file matches {pattern!r}")
    paths.extend(matches)
  return paths


def _read_labels(path):
  try:
    with open(path, encoding="utf-8") as f:
      return [line.strip() for line in f]
  except OSError as e:
    raise ValueError(f"cannot read --labels={path}: {e.strerror}") from e


def main(argv):
  del argv
  try:
    paths = _expand(FLAGS.images)
    labels = _read_labels(FLAGS.labels) if FLAGS.labels else None
    inputs = serving_client.image_inputs(paths, FLAGS.signature_name,
                                         FLAGS.family, FLAGS.image_size)
    if FLAGS.protocol == "rest":
      server = FLAGS.server or f"localhost:{serving_client.REST_PORT}"
      predict = serving_client.rest_predict
    else:
      server = FLAGS.server or f"localhost:{serving_client.GRPC_PORT}"
      predict = serving_client.grpc_predict
    outputs = predict(server, FLAGS.model_name, inputs,
                      FLAGS.signature_name, FLAGS.model_version,
                      FLAGS.timeout)
  except ValueError as e:
    sys.exit(f"serving_client: error: {e}")
  for index, path in enumerate(paths):
    print(f"{path}: {serving_client.describe(outputs, index, labels)}")


if __name__ == "__main__":
  app.run(main)
