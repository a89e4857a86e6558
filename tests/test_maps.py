"""Ponder cost maps: HDF5 export, drawing, and maps of the user's photos."""

import os
import subprocess
import sys
import zlib

import h5py
import numpy as np
from PIL import Image
import pytest

import helpers
from helpers import REPO
from sact_tf.data import preprocessing
from sact_tf.training import checkpoint_io
from sact_tf.viz import h5_export
from sact_tf.viz import photos
from sact_tf.viz import ponder_maps

VIRIDIS_ENDS = [[68, 1, 84], [253, 231, 37]]


def read_png(path):
  return np.asarray(Image.open(path).convert("RGB"))


def test_colorize_and_overlay():
  colors = ponder_maps.colorize([[1.0, 2.0, 5.0]], 1.0, 2.0)
  np.testing.assert_array_equal(colors[0], VIRIDIS_ENDS + VIRIDIS_ENDS[1:])
  image = np.full((1, 3, 3), 100, np.uint8)
  np.testing.assert_array_equal(
      ponder_maps.overlay(image, [[1.0, 2.0, 5.0]], 1.0, 2.0, alpha=0.5)[0],
      np.round((100 + colors[0].astype(float)) / 2))
  # A constant map sits in the middle of the colour map.
  np.testing.assert_array_equal(ponder_maps.colorize(np.full((2, 2, 1), 3.0),
                                                     3.0, 3.0)[0, 0],
                                [33, 145, 140])
  with pytest.raises(ValueError, match="expected vmin <= vmax"):
    ponder_maps.colorize([[1.0]], 2.0, 1.0)
  with pytest.raises(ValueError, match=r"uint8 image of shape \(1, 3, 3\)"):
    ponder_maps.overlay(image[:, :2], [[1.0, 2.0, 5.0]], 1.0, 2.0)
  values = np.arange(2000.0)
  assert ponder_maps.percentile_range(values) == (
      np.percentile(values, 0.1), np.percentile(values, 99.9))
  assert ponder_maps.FAMILIES == preprocessing.FAMILIES


def test_display_image():
  np.testing.assert_array_equal(
      ponder_maps.display_image(np.array([[[-1.0, 0.0, 1.0]]]), "imagenet"),
      [[[0, 128, 255]]])
  np.testing.assert_array_equal(
      ponder_maps.display_image(np.array([[[-3.0, -1.0, 1.0]]]), "cifar"),
      [[[0, 128, 255]]])


def test_load_photo_converts_formats(tmp_path, testdata_dir):
  cat = Image.open(testdata_dir / "cat.jpg")
  rgb = np.asarray(cat)
  cat.save(tmp_path / "cat.png")
  np.testing.assert_array_equal(photos.load_photo(str(tmp_path / "cat.png")),
                                rgb)
  cat.convert("RGBA").save(tmp_path / "rgba.png")
  np.testing.assert_array_equal(photos.load_photo(str(tmp_path / "rgba.png")),
                                rgb)
  cat.convert("L").save(tmp_path / "gray.jpg")
  gray = photos.load_photo(str(tmp_path / "gray.jpg"))
  assert gray.shape == (240, 320, 3)
  np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
  cat.convert("CMYK").save(tmp_path / "cmyk.jpg")
  cmyk = photos.load_photo(str(tmp_path / "cmyk.jpg"))
  assert cmyk.shape == (240, 320, 3)
  assert np.abs(cmyk.astype(int) - rgb).mean() < 3
  Image.fromarray(np.array([[0, 25700, 65535]], np.uint16)).save(
      tmp_path / "sixteen.png")
  np.testing.assert_array_equal(
      photos.load_photo(str(tmp_path / "sixteen.png"))[0, :, 0], [0, 100, 255])
  # Resized: the longer edge gets image_size pixels.
  assert photos.load_photo(str(testdata_dir / "gasworks.jpg"),
                           image_size=100).shape == (75, 100, 3)


def test_load_photo_refuses_bad_files(tmp_path, testdata_dir):
  (tmp_path / "notes.jpg").write_text("not a photo")
  with pytest.raises(ValueError, match=(
      r"^cannot read .*notes.jpg as an image: cannot identify image file")):
    photos.load_photo(str(tmp_path / "notes.jpg"))
  (tmp_path / "cut.jpg").write_bytes(
      (testdata_dir / "cat.jpg").read_bytes()[:3000])
  with pytest.raises(ValueError, match="cut.jpg as an image: image file is "
                                       "truncated"):
    photos.load_photo(str(tmp_path / "cut.jpg"))
  Image.new("RGB", (3000, 10)).save(tmp_path / "wide.png")
  with pytest.raises(ValueError, match=(
      r"wide.png is 3000x10 pixels, larger than 2048 on its longer edge; "
      r"resize it with --image_size$")):
    photos.load_photo(str(tmp_path / "wide.png"))
  assert photos.load_photo(str(tmp_path / "wide.png"), 300).shape == (
      1, 300, 3)
  # A PNG header of 20000 x 20000 pixels: Pillow's decompression bomb guard.
  Image.new("RGB", (1, 1)).save(tmp_path / "bomb.png")
  data = bytearray((tmp_path / "bomb.png").read_bytes())
  data[16:24] = (20000).to_bytes(4, "big") * 2  # IHDR width and height.
  data[29:33] = zlib.crc32(data[12:29]).to_bytes(4, "big")
  (tmp_path / "bomb.png").write_bytes(data)
  with pytest.raises(ValueError, match=r"bomb.png as an image: Image size "
                                       r"\(400000000 pixels\) exceeds limit"):
    photos.load_photo(str(tmp_path / "bomb.png"), 512)
  with pytest.raises(ValueError, match="no file matches"):
    photos.find_photos(str(tmp_path / "*.gif"))
  os.mkdir(tmp_path / "other")
  (tmp_path / "other" / "notes.png").write_text("")
  with pytest.raises(ValueError, match="would both write notes_"):
    photos.find_photos(str(tmp_path / "**" / "notes.*"))


def batches(images, size):
  for start in range(0, len(images), size):
    yield {"images": images[start:start + size],
           "labels": np.arange(start, min(start + size, len(images)))}


def test_export_to_h5_and_draw(tmp_path):
  model = helpers.write_run(tmp_path / "run", "cifar", "sact")
  images = np.random.default_rng(3).normal(size=(7, 32, 32, 3)).astype(
      np.float32)
  path = str(tmp_path / "maps.h5")
  assert h5_export.export_to_h5(model, batches(images, 3), path, 5,
                                "cifar") == 5
  end_points = model(images[:5], training=False)
  with h5py.File(path, "r") as data:
    assert list(data.attrs["block_scopes"]) == ["block_1", "block_2",
                                                "block_3"]
    assert data.attrs["family"] == "cifar"
    np.testing.assert_array_equal(data["images"], images[:5])
    np.testing.assert_array_equal(data["labels"], np.arange(5))
    for key in ("flops", "block_2/num_units", "block_3/flops"):
      np.testing.assert_array_equal(data[key], end_points[key], err_msg=key)
    for key in ("ponder_cost_map", "num_units_map", "block_1/ponder_cost",
                "block_2/halting_distribution"):
      np.testing.assert_allclose(data[key], end_points[key], atol=1e-6,
                                 err_msg=key)
    maps = data["ponder_cost_map"][:]
  assert maps.min() < maps.max()
  with pytest.raises(ValueError, match="already exists"):
    h5_export.export_to_h5(model, batches(images, 3), path, 5, "cifar")

  out = tmp_path / "pictures"
  out.mkdir()
  low, high = ponder_maps.draw_h5(path, str(out))
  assert (low, high) == ponder_maps.percentile_range(maps)
  names = sorted(os.listdir(out))
  expected = ["colorbar.png"] + sorted(
      f"{m.mean():.2f}_{i}_{kind}" for i, m in enumerate(maps)
      for kind in ("im.jpg", "ponder.png"))
  assert names == sorted(expected)
  np.testing.assert_array_equal(
      read_png(out / f"{maps[2].mean():.2f}_2_ponder.png"),
      ponder_maps.colorize(maps[2], low, high))
  assert read_png(out / "colorbar.png").shape[0] > 300


def test_export_refuses_vanilla_and_draw_refuses_act(tmp_path):
  vanilla = helpers.write_run(tmp_path / "vanilla", "cifar", "vanilla",
                                depth="1")
  with pytest.raises(ValueError, match="a vanilla model has no ponder cost"):
    h5_export.export_to_h5(vanilla, [], str(tmp_path / "v.h5"), 1, "cifar")
  act = helpers.write_run(tmp_path / "act", "cifar", "act")
  path = str(tmp_path / "act.h5")
  images = np.zeros((2, 32, 32, 3), np.float32)
  h5_export.export_to_h5(act, batches(images, 2), path, 10, "cifar")
  with h5py.File(path, "r") as data:
    assert data["block_1/ponder_cost"].shape == (2,)
    assert "ponder_cost_map" not in data
  with pytest.raises(ValueError, match="has no ponder_cost_map"):
    ponder_maps.draw_h5(path, str(tmp_path))
  with pytest.raises(ValueError, match="the input holds no examples"):
    h5_export.export_to_h5(act, [], str(tmp_path / "none.h5"), 1, "cifar")
  assert not (tmp_path / "none.h5").exists()


def test_export_maps_and_draw_tools(tmp_path):
  """A run on the offline dataset to HDF5, then tools/draw_ponder_maps.py."""
  helpers.write_run(tmp_path / "run", "cifar", "sact")
  # The export runs the model sparse (the same maps as dense up to float
  # rounding, tests/test_sparse.py).
  model, _ = checkpoint_io.restore_model(str(tmp_path / "run"),
                                         execution="sparse")
  path = tmp_path / "maps.h5"
  count, config = h5_export.export_checkpoint(
      str(tmp_path / "run"), str(path), num_examples=6, batch_size=4)
  assert count == 6 and config["dataset"] == "cluttered_digits"
  with h5py.File(path, "r") as data:
    images = data["images"][:]
    assert images.shape == (6, 32, 32, 3)
    assert data["object_mask"].shape == (6, 32, 32, 1)
    np.testing.assert_allclose(
        data["ponder_cost_map"], model(images)["ponder_cost_map"], atol=1e-5)
  # Drawing needs no TensorFlow, so this subprocess is quick.
  result = subprocess.run(
      [sys.executable, "tools/draw_ponder_maps.py", f"--input_file={path}",
       f"--output_dir={tmp_path / 'pictures'}"],
      cwd=REPO, check=True, capture_output=True, text=True)
  assert result.stdout.startswith("0.1st percentile of ponder cost ")
  assert len(os.listdir(tmp_path / "pictures")) == 13
  with pytest.raises(ValueError, match=r"maps.h5 already exists"):
    h5_export.export_checkpoint(str(tmp_path / "run"), str(path))


def test_ponder_map_tool_on_photos(tmp_path, testdata_dir, oracle_dir):
  """The original release's SACT checkpoint on the README's photos."""
  checkpoint = oracle_dir / "cifar_resnet32_sact"
  out = tmp_path / "maps"
  result = subprocess.run(
      [sys.executable, "tools/ponder_map.py", f"--checkpoint_dir={checkpoint}",
       f"--images_pattern={testdata_dir / '*.jpg'}", f"--output_dir={out}",
       "--image_size=96"], cwd=REPO, check=True, capture_output=True,
      text=True)
  assert sorted(os.listdir(out)) == sorted(
      f"{name}_{kind}.png" for name in ("cat", "gasworks")
      for kind in ("im", "ponder", "overlay", "colorbar"))
  model, _ = checkpoint_io.restore_model(str(checkpoint))
  photo = photos.load_photo(str(testdata_dir / "cat.jpg"), 96)
  ponder_map = photos.ponder_cost_map(model, photo, "cifar")
  low, high = ponder_map.min(), ponder_map.max()
  assert f"Minimum/maximum ponder cost {low:.2f}/{high:.2f}" in result.stdout
  assert high - low > 1
  np.testing.assert_array_equal(read_png(out / "cat_im.png"), photo)
  np.testing.assert_array_equal(read_png(out / "cat_ponder.png"),
                                ponder_maps.colorize(ponder_map, low, high))
  np.testing.assert_array_equal(
      read_png(out / "cat_overlay.png"),
      ponder_maps.overlay(photo, ponder_map, low, high))


def test_ponder_map_tool_checks_every_photo_first(tmp_path, testdata_dir):
  (tmp_path / "a.jpg").write_bytes((testdata_dir / "cat.jpg").read_bytes())
  (tmp_path / "b.jpg").write_text("not a photo")
  out = tmp_path / "maps"
  result = subprocess.run(
      [sys.executable, "tools/ponder_map.py",
       f"--checkpoint_dir={tmp_path / 'missing'}",
       f"--images_pattern={tmp_path / '*.jpg'}", f"--output_dir={out}"],
      cwd=REPO, capture_output=True, text=True)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      f"ponder_map: error: cannot read {tmp_path / 'b.jpg'} as an image: "
      f"cannot identify image file '{tmp_path / 'b.jpg'}'")
  assert not out.exists()
