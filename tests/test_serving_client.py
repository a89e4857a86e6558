"""The TF Serving client: REST bodies, PredictRequests, tools/serving_client.py.

No TF Serving can be installed here, so the requests are decoded as TF
Serving decodes them (`decode_rest_body`, `tf.make_ndarray`) and checked
against the signature's input specs, and small stand-ins for its REST and
gRPC Predict APIs on 127.0.0.1 run the exported SavedModel.
"""

import base64
from concurrent import futures
import http.server
import json
import re
import socket
import subprocess
import sys
import threading

import grpc
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

import helpers
from helpers import REPO
from sact_tf.data import boxes as box_ops
from sact_tf.data import digit_scenes
from sact_tf.data import preprocessing
from sact_tf.export import serving_client

MODEL_NAME = "sact"


@pytest.fixture(scope="module")
def signatures(tmp_path_factory):
  _, _, path = helpers.exported(tmp_path_factory)
  return tf.saved_model.load(path).signatures


@pytest.fixture(scope="module")
def photos(testdata_dir):
  return [str(testdata_dir / "cat.jpg"), str(testdata_dir / "gasworks.jpg")]


def decode_rest_body(body, signature):
  """TF Serving's reading of a row-format JSON body, as a signature's inputs.

  Raises AssertionError where TF Serving would refuse the body.
  """
  specs = signature.structured_input_signature[1]
  instances = body["instances"]
  inputs = {}
  for name, spec in specs.items():
    values = [instance[name] for instance in instances]
    if spec.dtype == tf.string:
      assert all(set(v) == {"b64"} for v in values)
      array = np.array([base64.b64decode(v["b64"]) for v in values],
                       dtype=object)
    else:
      array = np.array(values, dtype=spec.dtype.as_numpy_dtype)
    assert spec.shape.is_compatible_with(array.shape), (name, array.shape)
    inputs[name] = array
  assert all(set(instance) == set(specs) for instance in instances)
  return inputs


def run(signature, inputs):
  return {k: v.numpy() for k, v in signature(
      **{k: tf.constant(v) for k, v in inputs.items()}).items()}


class FakeRestHandler(http.server.BaseHTTPRequestHandler):
  """TF Serving's REST predict API for one model, in row format."""
  signatures = None

  def do_POST(self):  # pylint: disable=invalid-name
    match = re.fullmatch(r"/v1/models/([^/:]+)(/versions/\d+)?:predict",
                         self.path)
    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
    if not match or match.group(1) != MODEL_NAME:
      return self._answer(404, {"error": "Servable not found for request: "
                                         f"Latest({match and match.group(1)})"})
    signature = self.signatures[body.get("signature_name", "serving_default")]
    try:
      outputs = run(signature, decode_rest_body(body, signature))
    except tf.errors.InvalidArgumentError as e:
      return self._answer(400, {"error": e.message})
    rows = [{k: v[i].tolist() for k, v in outputs.items()}
            for i in range(len(body["instances"]))]
    return self._answer(200, {"predictions": rows})

  def _answer(self, code, content):
    data = json.dumps(content).encode()
    self.send_response(code)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  def log_message(self, *args):
    del args


class FakePredictionService(
    prediction_service_pb2_grpc.PredictionServiceServicer):
  """TF Serving's gRPC Predict for one model."""

  def __init__(self, signatures):
    self.signatures = signatures

  def Predict(self, request, context):  # pylint: disable=invalid-name
    if request.model_spec.name != MODEL_NAME:
      context.abort(grpc.StatusCode.NOT_FOUND,
                    f"Servable not found for request: "
                    f"Latest({request.model_spec.name})")
    outputs = run(self.signatures[request.model_spec.signature_name],
                  {k: tf.make_ndarray(v) for k, v in request.inputs.items()})
    response = predict_pb2.PredictResponse()
    for key, value in outputs.items():
      response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
    return response


def start_servers(signatures):
  """Starts the stand-ins; returns `(rest host:port, grpc host:port, stop)`."""
  handler = type("Handler", (FakeRestHandler,), {"signatures": signatures})
  rest = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  threading.Thread(target=rest.serve_forever, daemon=True).start()
  server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
  prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
      FakePredictionService(signatures), server)
  port = server.add_insecure_port("127.0.0.1:0")
  server.start()

  def stop():
    rest.shutdown()
    server.stop(None)

  return f"127.0.0.1:{rest.server_address[1]}", f"127.0.0.1:{port}", stop


@pytest.fixture(scope="module")
def servers(signatures):
  """`(rest host:port, grpc host:port)` of the stand-ins."""
  rest, grpc_address, stop = start_servers(signatures)
  yield rest, grpc_address
  stop()


def test_rest_body_decodes_to_the_signature_inputs(signatures, photos):
  encoded = serving_client.image_inputs(photos, "serving_bytes")
  body = json.loads(json.dumps(serving_client.rest_body(
      encoded, "serving_bytes")))
  assert body["signature_name"] == "serving_bytes"
  decoded = decode_rest_body(body, signatures["serving_bytes"])
  assert list(decoded["image_bytes"]) == [open(p, "rb").read()
                                          for p in photos]
  floats = serving_client.image_inputs(photos, "serving_default", "imagenet",
                                       64)
  expected = np.stack([preprocessing.preprocess_for_eval(
      tf.io.decode_jpeg(open(p, "rb").read()), "imagenet", 64)
                       for p in photos])
  np.testing.assert_array_equal(floats["images"], expected)
  body = json.loads(json.dumps(serving_client.rest_body(
      floats, "serving_default")))
  decoded = decode_rest_body(body, signatures["serving_default"])
  assert decoded["images"].dtype == np.float32
  np.testing.assert_array_equal(decoded["images"], expected)  # Bit-exact.


def test_predict_request_decodes_to_the_signature_inputs(signatures, photos):
  for name, inputs in (
      ("serving_bytes", serving_client.image_inputs(photos, "serving_bytes")),
      ("serving_default", serving_client.image_inputs(
          photos, "serving_default", "imagenet", 64))):
    request = predict_pb2.PredictRequest.FromString(
        serving_client.predict_request(inputs, MODEL_NAME, name,
                                       3).SerializeToString())
    assert request.model_spec.name == MODEL_NAME
    assert request.model_spec.signature_name == name
    assert request.model_spec.version.value == 3
    specs = signatures[name].structured_input_signature[1]
    assert set(request.inputs) == set(specs)
    for key, spec in specs.items():
      assert request.inputs[key].dtype == spec.dtype.as_datatype_enum
      value = tf.make_ndarray(request.inputs[key])
      assert spec.shape.is_compatible_with(value.shape)
      if spec.dtype == tf.string:
        assert list(value) == list(inputs[key])
      else:
        np.testing.assert_array_equal(value, inputs[key])


def test_rest_and_grpc_answers(signatures, servers, photos):
  rest, grpc_server = servers
  for name, inputs in (
      ("serving_bytes", serving_client.image_inputs(photos, "serving_bytes")),
      ("serving_default", serving_client.image_inputs(
          photos, "serving_default", "imagenet", 64))):
    expected = run(signatures[name], inputs)
    for outputs in (
        serving_client.rest_predict(rest, MODEL_NAME, inputs, name),
        serving_client.grpc_predict(grpc_server, MODEL_NAME, inputs, name)):
      assert set(outputs) == set(expected)
      for key, value in expected.items():
        np.testing.assert_allclose(outputs[key], value, rtol=1e-6,
                                   err_msg=key)
  outputs = serving_client.grpc_predict(grpc_server, MODEL_NAME, inputs,
                                        "serving_default")
  classes = outputs["classes"][1]
  line = serving_client.describe(outputs, 1, [f"c{i}" for i in range(11)])
  assert line.startswith(
      f"top-5 {classes[0]} c{classes[0]} "
      f"({outputs['probabilities'][1][classes[0]]:.2f}), {classes[1]} ")
  assert f"; flops {outputs['flops'][1]}; ponder cost block1 " in line
  assert line.endswith(f"block4 {outputs['block4_ponder_cost'][1]:.2f}")


def test_server_errors_are_one_line_value_errors(servers, photos):
  rest, grpc_server = servers
  inputs = serving_client.image_inputs(photos[:1], "serving_bytes")
  with pytest.raises(ValueError, match=(
      r"answered 404: Servable not found for request: Latest\(other\)$")):
    serving_client.rest_predict(rest, "other", inputs, "serving_bytes")
  with pytest.raises(ValueError, match="answered NOT_FOUND: Servable not"):
    serving_client.grpc_predict(grpc_server, "other", inputs, "serving_bytes")
  with pytest.raises(ValueError, match=(
      r"answered 400: .*image_bytes must hold JPEG or PNG files")):
    serving_client.rest_predict(
        rest, MODEL_NAME, {"image_bytes": np.array([b"GIF89a"], object)},
        "serving_bytes")
  with socket.socket() as unused:
    unused.bind(("127.0.0.1", 0))
    closed = f"127.0.0.1:{unused.getsockname()[1]}"
  with pytest.raises(ValueError, match="cannot reach TF Serving at http://"):
    serving_client.rest_predict(closed, MODEL_NAME, inputs, "serving_bytes")
  with pytest.raises(ValueError, match="answered UNAVAILABLE"):
    serving_client.grpc_predict(closed, MODEL_NAME, inputs, "serving_bytes",
                                timeout=5)
  with pytest.raises(ValueError, match="give the model's family"):
    serving_client.image_inputs(photos, "serving_default")
  with pytest.raises(ValueError, match="cannot read nope.jpg"):
    serving_client.image_inputs(["nope.jpg"], "serving_bytes")


def test_tool_prints_the_answers(servers, photos):
  _, grpc_server = servers
  result = subprocess.run(
      [sys.executable, "tools/serving_client.py", "--protocol=grpc",
       f"--server={grpc_server}", f"--model_name={MODEL_NAME}",
       f"--images={photos[1]},{photos[0]}"],
      cwd=REPO, capture_output=True, text=True, check=True)
  lines = result.stdout.strip().splitlines()
  assert [line.split(": ")[0] for line in lines] == [photos[1], photos[0]]
  assert all(re.search(r": top-5 (\d+ \(\d\.\d\d\), ){4}\d+ \(\d\.\d\d\); "
                       r"flops \d+; ponder cost block1 \d\.\d\d, ", line)
             for line in lines)


@pytest.fixture(scope="module")
def detector_servers(tmp_path_factory):
  """Stand-ins serving a tiny SACT detector: `(rest, grpc, signatures)`."""
  _, _, path = helpers.exported_detector(tmp_path_factory)
  signatures = tf.saved_model.load(path).signatures
  rest, grpc_address, stop = start_servers(signatures)
  yield rest, grpc_address, signatures
  stop()


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
  """Two digit scenes as PNG files."""
  directory = tmp_path_factory.mktemp("scenes")
  paths = []
  for n, image in enumerate(digit_scenes.load("test")["image"][:2]):
    paths.append(str(directory / f"scene_{n}.png"))
    Image.fromarray(image).save(paths[-1])
  return paths


def test_detector_answers_are_described_as_detections(detector_servers,
                                                       scene_files):
  rest, grpc_server, signatures = detector_servers
  inputs = serving_client.image_inputs(scene_files, "serving_default",
                                       "detection", 64)
  np.testing.assert_array_equal(inputs["images"], box_ops.scale_images(
      np.stack([np.array(Image.open(p)) for p in scene_files])))
  expected = run(signatures["serving_default"], inputs)
  outputs = serving_client.rest_predict(rest, MODEL_NAME, inputs,
                                        "serving_default")
  assert serving_client.is_detector(outputs)
  for key, value in expected.items():
    np.testing.assert_allclose(outputs[key], value, rtol=1e-6, err_msg=key)
  outputs = serving_client.grpc_predict(
      grpc_server, MODEL_NAME,
      serving_client.image_inputs(scene_files, "serving_bytes"),
      "serving_bytes")
  count = int(outputs["num_detections"][0])
  assert count > 1
  line = serving_client.describe(outputs, 0, [f"c{i}" for i in range(10)])
  c, score = int(outputs["classes"][0][0]), outputs["scores"][0][0]
  box = ", ".join(f"{v:.1f}" for v in outputs["boxes"][0][0])
  assert line.startswith(f"{count} detections: {c} c{c} ({score:.2f}) "
                         f"[{box}], ")
  assert line.count("[") == count
  assert f"; flops {outputs['flops'][0]}; ponder cost block1 " in line


@pytest.mark.slow
def test_tool_prints_detections(detector_servers, scene_files):
  _, grpc_server, _ = detector_servers
  result = helpers.run_tool("serving_client.py", [
      "--protocol=grpc", f"--server={grpc_server}",
      f"--model_name={MODEL_NAME}", f"--images={','.join(scene_files)}"])
  assert result.returncode == 0, result.stderr
  lines = result.stdout.strip().splitlines()
  assert [line.split(": ")[0] for line in lines] == scene_files
  box = r"\[\d+\.\d, \d+\.\d, \d+\.\d, \d+\.\d\]"
  assert all(re.search(rf": \d+ detections: \d \(\d\.\d\d\) {box}, .*; "
                       rf"flops \d+; ponder cost block1 \d\.\d\d, ", line)
             for line in lines)
