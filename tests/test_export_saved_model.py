"""SavedModel export for TF Serving: tools/export_saved_model.py."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import helpers
from helpers import REPO
from sact_tf.data import preprocessing
from sact_tf.export import saved_model

IMAGES = np.random.default_rng(1).uniform(-1, 1, (3, 64, 64, 3)).astype(
    np.float32)
BLOCKS = ("block1", "block2", "block3", "block4")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
  return helpers.exported(tmp_path_factory)


def expected_outputs(model, images):
  """What the signatures must return, from the (dense) Keras model."""
  end_points = model(images, training=False)
  outputs = {"logits": end_points["logits"].numpy(),
             "probabilities": end_points["predictions"].numpy(),
             "flops": end_points["flops"].numpy(),
             "ponder_cost_map": end_points["ponder_cost_map"].numpy()}
  for block in BLOCKS:
    outputs[block + "_ponder_cost"] = tf.reduce_mean(
        end_points[block + "/ponder_cost"], [1, 2]).numpy()
  return outputs


def assert_outputs_match(outputs, expected):
  assert set(outputs) == set(expected) | {"classes"}
  for key, value in expected.items():
    np.testing.assert_allclose(outputs[key], value, rtol=1e-5, atol=1e-5,
                               err_msg=key)
  np.testing.assert_array_equal(outputs["flops"], expected["flops"])
  # Top 5 of 11 classes, most probable first.
  np.testing.assert_array_equal(
      outputs["classes"],
      np.argsort(-expected["probabilities"], axis=1, kind="stable")[:, :5])


def write_formats(directory):
  """The cat photo as PNG, grayscale JPEG, CMYK JPEG and palette PNG."""
  cat = Image.open(REPO.parent / "shared" / "testdata" / "cat.jpg")
  paths = []
  for name, mode in (("rgb.png", "RGB"), ("gray.jpg", "L"),
                     ("cmyk.jpg", "CMYK"), ("palette.png", "P")):
    paths.append(str(directory / name))
    cat.convert(mode).save(paths[-1])
  return paths


def test_layout_signatures_and_permissions(export):
  _, _, path = export
  base = os.path.dirname(path)
  assert os.listdir(base) == ["1"] and path == os.path.join(base, "1")
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(path).st_mode & 0o777 == 0o777 & ~umask
  loaded = tf.saved_model.load(path)
  assert set(loaded.signatures) == {"serving_default", "serving_bytes"}
  default = loaded.signatures["serving_default"]
  spec = default.structured_input_signature[1]["images"]
  assert spec.shape.as_list() == [None, 64, 64, 3] and spec.dtype == tf.float32
  spec = loaded.signatures["serving_bytes"].structured_input_signature[1]
  assert spec["image_bytes"].shape.as_list() == [None]
  assert set(default.structured_outputs) == {
      "logits", "probabilities", "classes", "flops", "ponder_cost_map",
      *(b + "_ponder_cost" for b in BLOCKS)}


def test_fresh_process_matches_the_model(export, tmp_path):
  """Loaded in a new process, both signatures give the model's outputs."""
  model, _, path = export
  paths = write_formats(tmp_path)
  np.save(tmp_path / "images.npy", IMAGES)
  script = f"""
import numpy as np, tensorflow as tf
loaded = tf.saved_model.load({path!r})
default = loaded.signatures["serving_default"](
    images=tf.constant(np.load({str(tmp_path / "images.npy")!r})))
files = [open(p, "rb").read() for p in {paths!r}]
encoded = loaded.signatures["serving_bytes"](image_bytes=tf.constant(files))
np.savez({str(tmp_path / "out.npz")!r},
         **{{"default/" + k: v.numpy() for k, v in default.items()}},
         **{{"bytes/" + k: v.numpy() for k, v in encoded.items()}})
"""
  subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO)
  out = np.load(tmp_path / "out.npz")
  split = lambda prefix: {k[len(prefix):]: out[k] for k in out.files
                          if k.startswith(prefix)}
  assert_outputs_match(split("default/"), expected_outputs(model, IMAGES))
  # Bytes: decoded (grayscale and CMYK to RGB) and preprocessed in the graph.
  decoded = np.stack([preprocessing.preprocess_for_eval(
      tf.io.decode_image(open(p, "rb").read(), channels=3,
                         expand_animations=False), "imagenet", 64)
                      for p in paths])
  assert_outputs_match(split("bytes/"), expected_outputs(model, decoded))
  # SACT halting differs between the images and within them.
  maps = out["bytes/ponder_cost_map"]
  assert maps.min() < maps.max() and len(set(maps.mean((1, 2, 3)))) > 1


def test_wrong_shapes_are_rejected_with_the_expected_shape(export):
  _, _, path = export
  loaded = tf.saved_model.load(path)
  message = r"expected shape \[\?,64,64,3\]"
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    loaded.signatures["serving_default"](images=tf.zeros([1, 32, 32, 3]))
  # As TF Serving runs it: a TF1 session whose input takes any shape (TF
  # Serving does not check the signature's shapes).
  with tf.Graph().as_default(), tf.compat.v1.Session() as session:
    images = tf.compat.v1.placeholder(tf.float32)
    meta_graph = tf.compat.v1.saved_model.load(
        session, ["serve"], path,
        input_map={"serving_default_images:0": images})
    logits = meta_graph.signature_def["serving_default"].outputs["logits"]
    assert session.run(logits.name, {images: IMAGES}).shape == (3, 11)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
      session.run(logits.name, {images: np.zeros([2, 64, 64, 1])})


def test_bad_image_bytes_are_rejected(export):
  _, _, path = export
  serve = tf.saved_model.load(path).signatures["serving_bytes"]
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="image_bytes must hold JPEG or PNG files"):
    serve(image_bytes=tf.constant([b"GIF89a not a photo"]))
  # A PNG header of 100000 x 100000 pixels: refused before decoding.
  huge = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" +
          (100000).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00")
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="at most 50000000 pixels"):
    serve(image_bytes=tf.constant([huge]))


def test_saved_model_cli_show_and_run(export, tmp_path):
  model, _, path = export
  show = subprocess.run(
      ["saved_model_cli", "show", "--dir", path, "--all"], check=True,
      capture_output=True, text=True).stdout
  assert "signature_def['serving_bytes']" in show
  assert "shape: (-1, 64, 64, 3)" in show
  assert "outputs['block3_ponder_cost']" in show
  np.save(tmp_path / "images.npy", IMAGES)
  subprocess.run(
      ["saved_model_cli", "run", "--dir", path, "--tag_set", "serve",
       "--signature_def", "serving_default", "--inputs",
       f"images={tmp_path / 'images.npy'}", "--outdir", str(tmp_path / "out")],
      check=True, capture_output=True)
  outputs = {name[:-len(".npy")]: np.load(tmp_path / "out" / name)
             for name in os.listdir(tmp_path / "out")}
  assert_outputs_match(outputs, expected_outputs(model, IMAGES))


def test_existing_version_is_refused_unless_overwrite(tmp_path):
  helpers.write_run(tmp_path / "run", "cifar", "vanilla", depth="1")
  base = str(tmp_path / "models")
  first, config = saved_model.export_checkpoint(str(tmp_path / "run"), base,
                                                version=3)
  assert config["family"] == "cifar" and first.endswith("/3")
  stamp = os.stat(os.path.join(first, "saved_model.pb")).st_mtime_ns
  with pytest.raises(ValueError, match=(
      r"models/3 already exists \(versions \[3\] are there\); pass "
      r"--version=4 or --overwrite")):
    saved_model.export_checkpoint(str(tmp_path / "run"), base, version=3)
  assert os.stat(os.path.join(first, "saved_model.pb")).st_mtime_ns == stamp
  saved_model.export_checkpoint(str(tmp_path / "run"), base, version=3,
                                overwrite=True)
  assert sorted(os.listdir(base)) == ["3"]  # No temporary left behind.
  signature = tf.saved_model.load(first).signatures["serving_default"]
  outputs = signature(images=tf.zeros([1, 32, 32, 3]))
  assert set(outputs) == {"logits", "probabilities", "classes", "flops"}
  with pytest.raises(ValueError, match="version must be a positive integer"):
    saved_model.version_path(base, 0)


def test_tool_fails_in_one_line_and_leaves_nothing(tmp_path):
  export_dir = tmp_path / "models"
  result = subprocess.run(
      [sys.executable, "tools/export_saved_model.py",
       f"--checkpoint_dir={tmp_path / 'missing'}",
       f"--export_dir={export_dir}"], cwd=REPO, capture_output=True,
      text=True)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      f"export_saved_model: error: checkpoint path "
      f"'{tmp_path / 'missing'}' does not exist")
  assert not export_dir.exists()


def test_exact_export_keeps_the_batch_norms(tmp_path):
  """By default the export is inference-optimised; `exact=True` is not."""
  model = helpers.write_run(tmp_path / "run", "imagenet", "sact")
  base = str(tmp_path / "models")
  exact, _ = saved_model.export_checkpoint(str(tmp_path / "run"), base,
                                           version=1, exact=True)
  folded, _ = saved_model.export_checkpoint(str(tmp_path / "run"), base,
                                            version=2)
  counts = [len(tf.train.list_variables(os.path.join(p, "variables",
                                                     "variables")))
            for p in (exact, folded)]
  # Four batch norm variables per unfolded layer against two or none.
  assert counts[0] > counts[1] + 40
  for path in (exact, folded):
    outputs = tf.saved_model.load(path).signatures["serving_default"](
        images=tf.constant(IMAGES))
    assert_outputs_match({k: v.numpy() for k, v in outputs.items()},
                         expected_outputs(model, IMAGES))
