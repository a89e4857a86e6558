"""SACT's ponder cost maps beside sampling density maps (compare_maps)."""

import numpy as np
from PIL import Image
import pytest

import helpers
from sact_tf.viz import map_comparison


@pytest.fixture
def runs(tmp_path):
  """A tiny SACT and a tiny sampling run of the cluttered digits."""
  return {model_type: helpers.write_run(tmp_path / model_type, "cifar",
                                        model_type)
          for model_type in ("sact", "sampling")}


def test_maps_of_a_sact_and_a_sampling_run(tmp_path, runs):
  comparison = map_comparison.checkpoint_maps(
      [str(tmp_path / "sact"), str(tmp_path / "sampling")], num_examples=3)
  images = comparison["images"]
  assert images.shape == (3, 32, 32, 3) and comparison["family"] == "cifar"
  # The digits' boxes: ones inside, zeros outside.
  mask = comparison["object_mask"]
  assert mask.shape == (3, 32, 32) and set(np.unique(mask)) == {0.0, 1.0}
  columns = comparison["columns"]
  assert [(c["name"], c["label"]) for c in columns] == [
      ("sact", "ponder cost"), ("sampling", "sampling density")]
  for column, key in zip(columns, ("ponder_cost_map",
                                   "sampling_density_map")):
    # The restored models run sparse, the saved ones dense.
    expected = runs[column["model_type"]](images, training=False)[key]
    np.testing.assert_allclose(column["maps"], expected.numpy()[..., 0],
                               rtol=0, atol=1e-4)
  ponder, density = columns[0]["maps"], columns[1]["maps"]
  # At least one unit in each of the three blocks; sampled fractions.
  assert ponder.min() >= 3 and ponder.std() > 0
  assert 0 <= density.min() and density.max() <= 1 and density.std() > 0

  path = tmp_path / "maps.png"
  map_comparison.draw_map_comparison(comparison, str(path))
  width, height = Image.open(path).size
  assert height > width > 100  # Three rows of input and two maps.
  with pytest.raises(ValueError, match="already exists"):
    map_comparison.draw_map_comparison(comparison, str(path))


def test_refuses_vanilla_runs_and_different_data(tmp_path, runs):
  del runs
  helpers.write_run(tmp_path / "vanilla", "cifar", "vanilla")
  helpers.write_run(tmp_path / "imagenet", "imagenet", "sact")
  with pytest.raises(ValueError, match="'vanilla' model, which has no map"):
    map_comparison.checkpoint_maps([str(tmp_path / "sact"),
                                    str(tmp_path / "vanilla")])
  with pytest.raises(ValueError, match="dataset='imagenet2012'"):
    map_comparison.checkpoint_maps([str(tmp_path / "sact"),
                                    str(tmp_path / "imagenet")])
  with pytest.raises(ValueError, match="num_examples=0"):
    map_comparison.checkpoint_maps([str(tmp_path / "sact")], num_examples=0)


@pytest.mark.slow
def test_compare_maps_tool(tmp_path, runs):
  del runs
  output = tmp_path / "maps.png"
  args = [f"--checkpoint_dirs={tmp_path}/sact,{tmp_path}/sampling",
          "--num_examples=2", f"--output={output}"]
  result = helpers.run_tool("compare_maps.py", args)
  assert result.returncode == 0, result.stderr
  lines = result.stdout.strip().splitlines()
  assert lines[0].startswith("sact (ponder cost): ")
  assert lines[1].startswith("sampling (sampling density): ")
  assert all(len(line.split(": ")[1].split()) == 2 for line in lines[:2])
  assert output.stat().st_size > 1000
  before = output.read_bytes()
  result = helpers.run_tool("compare_maps.py", args)
  last = result.stderr.strip().splitlines()[-1]
  assert result.returncode != 0 and last.startswith("compare_maps: error: ")
  assert "already exists" in last and output.read_bytes() == before
