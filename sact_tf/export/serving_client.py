"""Requests to TF Serving for the signatures of `sact_tf.export.saved_model`.

Two protocols, both TF Serving's Predict API:

* REST: `POST http://HOST:8501/v1/models/NAME[/versions/V]:predict` with the
  JSON body `{"signature_name": ..., "instances": [{"images": [[[...]]]},
  ...]}` (row format; encoded files as `{"b64": "..."}`); the answer is
  `{"predictions": [{"logits": [...], "classes": [...], ...}, ...]}`.
* gRPC: `tensorflow.serving.PredictionService/Predict` on HOST:8500 with a
  `PredictRequest` (tensorflow-serving-api) whose `inputs` are
  `TensorProto`s.

Inputs are dicts `{input name: array with the batch first}`; outputs are
dicts `{output name: numpy array with the batch first}`.
"""

import base64
import json
import urllib.error
import urllib.request

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from sact_tf.data import boxes as box_ops
from sact_tf.data import preprocessing
from sact_tf.export import saved_model

# The `family` of detectors' inputs (`box_ops.detection_input`).
DETECTION = "detection"
FAMILIES = preprocessing.FAMILIES + (DETECTION,)
REST_PORT = 8501
GRPC_PORT = 8500
PROTOCOLS = ("rest", "grpc")
# Answers hold `probabilities` and SACT `ponder_cost_map`s: more than gRPC's
# default 4 MB for a few ImageNet images.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


def image_inputs(paths, signature_name, family=None, image_size=None):
  """The inputs of a signature for a list of image files.

  Args:
    paths: list of str, JPEG or PNG files.
    signature_name: str. `"serving_bytes"`: the files' bytes are sent and
      the server preprocesses them; `"serving_default"`: the images are
      decoded and preprocessed here (`preprocess_for_eval`), which needs
      `family` and `image_size`.
    family: str or None, `"cifar"` or `"imagenet"` (classifiers) or
      `"detection"` (detectors: `box_ops.detection_input`, the boxes found
      are in the pixels of the image fitted into `image_size`).
    image_size: int or None, the model's input size.

  Returns:
    `{"image_bytes": object array [n] of bytes}` or `{"images": float32
    [n, image_size, image_size, 3]}`.

  Raises:
    ValueError: an unknown signature, a file that cannot be read or decoded,
      or `serving_default` without `family` and `image_size`.
  """
  if signature_name not in (saved_model.SERVING_BYTES,
                            saved_model.SERVING_DEFAULT):
    raise ValueError(
        f"signature_name must be {saved_model.SERVING_BYTES!r} or "
        f"{saved_model.SERVING_DEFAULT!r}, received {signature_name!r}")
  contents = []
  for path in paths:
    try:
      with open(path, "rb") as f:
        contents.append(f.read())
    except OSError as e:
      raise ValueError(f"cannot read {path}: {e.strerror}") from e
  if signature_name == saved_model.SERVING_BYTES:
    return {saved_model.IMAGE_BYTES: np.array(contents, dtype=object)}
  if family is None or image_size is None:
    raise ValueError(f"{saved_model.SERVING_DEFAULT} takes preprocessed "
                     f"images: give the model's family and image_size")
  images = []
  for path, data in zip(paths, contents):
    try:
      image = tf.io.decode_image(data, channels=3, expand_animations=False)
    except tf.errors.InvalidArgumentError as e:
      raise ValueError(f"{path} is not an image TensorFlow can decode") from e
    if family == DETECTION:
      images.append(box_ops.detection_input(image, image_size).numpy())
    else:
      images.append(preprocessing.preprocess_for_eval(image, family,
                                                      image_size).numpy())
  return {saved_model.IMAGES: np.stack(images)}


def _json_value(value):
  if isinstance(value, bytes):
    return {"b64": base64.b64encode(value).decode("ascii")}
  return np.asarray(value).tolist()


def rest_body(inputs, signature_name):
  """The JSON body (a dict) of a REST predict request, in row format."""
  sizes = {len(v) for v in inputs.values()}
  if len(sizes) != 1:
    raise ValueError(f"inputs must have the same batch size, received "
                     f"{ {k: len(v) for k, v in inputs.items()} }")
  return {"signature_name": signature_name, "instances": [
      {name: _json_value(values[i]) for name, values in inputs.items()}
      for i in range(sizes.pop())]}


def rest_url(server, model_name, version=None):
  """`http://server/v1/models/<name>[/versions/<v>]:predict`."""
  url = f"http://{server}/v1/models/{model_name}"
  if version is not None:
    url += f"/versions/{version}"
  return url + ":predict"


def rest_predict(server, model_name, inputs, signature_name, version=None,
                 timeout=60.0):
  """Sends a REST predict request; returns `{output name: array}`.

  Raises:
    ValueError: the server cannot be reached or answers with an error.
  """
  url = rest_url(server, model_name, version)
  request = urllib.request.Request(
      url, data=json.dumps(rest_body(inputs, signature_name)).encode(),
      headers={"Content-Type": "application/json"}, method="POST")
  try:
    with urllib.request.urlopen(request, timeout=timeout) as response:
      answer = json.load(response)
  except urllib.error.HTTPError as e:
    detail = e.read().decode(errors="replace")
    try:
      detail = json.loads(detail)["error"]
    except (ValueError, KeyError, TypeError):
      pass
    raise ValueError(f"TF Serving at {url} answered {e.code}: "
                     f"{' '.join(str(detail).split())}") from e
  except (urllib.error.URLError, OSError) as e:
    raise ValueError(f"cannot reach TF Serving at {url}: "
                     f"{getattr(e, 'reason', e)}") from e
  rows = answer["predictions"]  # One dict of outputs per image.
  return {k: np.array([row[k] for row in rows]) for k in rows[0]}


def predict_request(inputs, model_name, signature_name, version=None):
  """The gRPC `PredictRequest` of `inputs` (tensorflow-serving-api)."""
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature_name
  if version is not None:
    request.model_spec.version.value = version
  for name, values in inputs.items():
    request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
  return request


def grpc_predict(server, model_name, inputs, signature_name, version=None,
                 timeout=60.0):
  """Sends a gRPC Predict request; returns `{output name: array}`.

  Raises:
    ValueError: the server cannot be reached or answers with an error.
  """
  options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
             ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
  with grpc.insecure_channel(server, options=options) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    try:
      response = stub.Predict(
          predict_request(inputs, model_name, signature_name, version),
          timeout=timeout)
    except grpc.RpcError as e:
      raise ValueError(f"TF Serving at {server} answered {e.code().name}: "
                       f"{' '.join(str(e.details()).split())}") from e
  return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


def _ponder_costs(outputs, index):
  """`"; ponder cost block1 2.95, ..."` of image `index`, or `""`."""
  suffix = saved_model.PONDER_COST_SUFFIX
  costs = sorted(k for k in outputs if k.endswith(suffix))
  if not costs:
    return ""
  return "; ponder cost " + ", ".join(
      f"{k[:-len(suffix)]} {float(outputs[k][index]):.2f}" for k in costs)


def _class_name(c, labels):
  return f"{c}{' ' + labels[c] if labels and 0 <= c < len(labels) else ''}"


def is_detector(outputs):
  """Whether an answer is a detector's (it has `boxes` and `num_detections`)."""
  return "boxes" in outputs and "num_detections" in outputs


def describe(outputs, index, labels=None):
  """One line for image `index` of an answer: what it found, FLOPs, ponder.

  Args:
    outputs: `{output name: array}` of `rest_predict` / `grpc_predict`.
    index: int, the image in the batch.
    labels: list of str or None, the class names by class id.

  Returns:
    str. A classifier's: e.g. `top-5 282 tiger cat (0.41), 281 tabby
    (0.21), ...; flops 7821409024; ponder cost block1 2.95, block2 3.10,
    ...`. A detector's (`is_detector`): its detections, most confident
    first, as class, score and box `[ymin, xmin, ymax, xmax]` in pixels,
    e.g. `2 detections: 7 (0.93) [12.0, 30.5, 28.0, 46.1], 1 (0.41) [...];
    flops ...; ponder cost ...`.
  """
  if is_detector(outputs):
    count = int(outputs["num_detections"][index])
    found = ", ".join(
        f"{_class_name(int(c), labels)} ({s:.2f}) "
        f"[{', '.join(f'{v:.1f}' for v in box)}]"
        for c, s, box in zip(outputs["classes"][index][:count].tolist(),
                             outputs["scores"][index][:count].tolist(),
                             outputs["boxes"][index][:count].tolist()))
    line = f"{count} detection{'' if count == 1 else 's'}"
    line += f": {found}" if count else ""
  else:
    classes = np.asarray(outputs["classes"][index])
    probabilities = np.asarray(outputs["probabilities"][index])
    top = ", ".join(f"{_class_name(c, labels)} ({probabilities[c]:.2f})"
                    for c in classes.tolist())
    line = f"top-{len(classes)} {top}"
  return (line + f"; flops {int(outputs['flops'][index])}" +
          _ponder_costs(outputs, index))
