"""tools/benchmark.py on a tiny ImageNet ResNet (subprocesses)."""

import json
import sys

import pytest

import helpers

pytestmark = pytest.mark.slow
# Blocks of 1 unit (no unit runs on a residual mask) and of 4 units; wide
# enough that the stem does not dominate the FLOPs.
TINY = ["--model=1_4_4_1", "--base_channels=16", "--image_size=32",
        "--batch_sizes=2", "--repeats=2", "--warmup=1"]


def _run(args):
  return helpers.run_tool("benchmark.py", TINY + args)


def test_report(tmp_path):
  output = tmp_path / "bench.json"
  result = _run(["--flops_fractions=0,0.75,1.0", "--unit_fractions=0.5",
                 "--sparse_kernels=tf,xla", "--dilation_paths",
                 "--halting=random,blob", "--keras_model=50",
                 "--scatter_benchmark", "--scatter_fractions=0.5,40",
                 f"--output={output}"])
  assert result.returncode == 0, result.stderr
  report = json.loads(output.read_text())
  network = report["network"]
  assert [(row["family"], row["halting"], row["target"])
          for row in network] == [
              ("sact", pattern, target) for pattern in ("random", "blob")
              for target in (0.0, 0.75, 1.0)]
  for rows in (network[:3], network[3:]):
    # At 0 every block stops after its first unit; the bisected bias hits
    # the target; nothing halts at 1.0 (the halting heads' FLOPs come on
    # top of the vanilla network's).
    assert set(rows[0]["mean_units"].values()) == {1.0}
    assert 0 < rows[0]["flops_fraction"] < rows[2]["flops_fraction"]
    assert abs(rows[1]["flops_fraction"] - 0.75) < 0.05
    assert rows[2]["flops_fraction"] > 1.0
  timed = {"vanilla", "dense", "sparse_tf", "sparse_xla", "vanilla_opt",
           "sparse_tf_opt", "sparse_xla_opt", "keras"}
  for row in network:
    assert set(row["ms_per_image"]) == timed
    assert set(row["vs_keras"]) == timed - {"keras"}
    assert all(ratio > 0 for ratio in row["vs_keras"].values())
    assert row["vanilla_opt_vs_vanilla"] > 0
    for kernels in ("sparse_tf", "sparse_xla", "sparse_tf_opt",
                    "sparse_xla_opt"):
      assert row[kernels]["max_abs_logit_diff"] < 1e-4
      assert row[kernels]["flops_max_rel_diff"] == 0.0
      assert row[kernels]["efficiency"] == (
          row["flops_fraction"] / row[kernels]["wall_fraction"])
  units = report["units"]
  assert [(u["block"], u["size"]) for u in units] == [("block2", 4),
                                                      ("block3", 2)]
  for u in units:
    assert 0 < u["active"] <= u["dilated"] <= 1
    assert u["active"] <= u["ideal"] <= u["dilated"]
    assert set(u["ms"]) == {"dense", "sparse_tf", "sparse_xla",
                            "sparse_tf_gathered", "sparse_tf_whole_map",
                            "sparse_xla_gathered", "sparse_xla_whole_map"}
    for name, ms in u["ms"].items():
      if name != "dense":
        assert u[name]["ratio"] > 0 and ms > 0
  # Per block (sizes 8, 4, 2, 1), the halting map and the state (depths
  # 64, 128, 256, 512), at 0.5 and 40 times the positions (batch 2).
  scatters = report["scatters"]
  assert [(s["size"], s["depth"], s["rows"]) for s in scatters] == [
      (size, depth, round(fraction * 2 * size**2))
      for size, width in ((8, 64), (4, 128), (2, 256), (1, 512))
      for depth in (1, width) for fraction in (0.5, 40)]
  for s in scatters:
    assert s["faster"] == min(s["us"], key=s["us"].get)
  # The default rule compiles the large scatters of a map, not the small.
  for small, large in zip(scatters[::2], scatters[1::2]):
    assert small["chosen"] == "tf" or large["chosen"] == "xla"
  assert {s["chosen"] for s in scatters} == {"tf", "xla"}
  assert "wall" in result.stdout and "vs keras" in result.stdout


def test_sampling_family(tmp_path):
  """Masked and sparse sampling at three targets, with vanilla and Keras."""
  output = tmp_path / "bench.json"
  result = _run(["--families=sampling", "--flops_fractions=0,0.92,1.0",
                 "--repeats=1", "--keras_model=50", "--unit_benchmark=false",
                 f"--output={output}"])
  assert result.returncode == 0, result.stderr
  rows = json.loads(output.read_text())["network"]
  assert [(r["family"], r["target"]) for r in rows] == [
      ("sampling", target) for target in (0.0, 0.92, 1.0)]
  assert all("halting" not in r for r in rows)
  # 0: only the grid prior, every 4th row and column of block1's 8x8 maps
  # (84% of vanilla's FLOPs on this narrow network: an interpolated
  # position costs nearly as much as a computed one); 1.0: every position,
  # the mask convolutions on top of vanilla's FLOPs.
  assert rows[0]["density"]["block1"] == 1 / 16
  assert set(rows[2]["density"].values()) == {1.0}
  assert 0 < rows[0]["flops_fraction"] < rows[1]["flops_fraction"]
  assert abs(rows[1]["flops_fraction"] - 0.92) < 0.02
  assert rows[2]["flops_fraction"] > 1.0
  for row in rows:
    assert set(row["ms_per_image"]) == {"vanilla", "dense", "sparse_tf",
                                        "keras"}
    assert all(ms > 0 for ms in row["ms_per_image"].values())
    assert set(row["vs_keras"]) == {"vanilla", "dense", "sparse_tf"}
    assert all(ratio > 0 for ratio in row["vs_keras"].values())
    assert row["dense_vs_vanilla"] > 0
    sparse = row["sparse_tf"]
    assert sparse["flops_max_rel_diff"] == 0.0
    assert sparse["max_abs_logit_diff"] < 1e-4
    assert sparse["wall_fraction"] > 0 and sparse["vs_vanilla"] > 0
    assert sparse["efficiency"] == (row["flops_fraction"] /
                                    sparse["wall_fraction"])
  assert "sampling batch  2" in result.stdout


def _benchmark_module():
  sys.path.insert(0, str(helpers.REPO / "tools"))
  try:
    import benchmark  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.pop(0)
  return benchmark


def test_bad_input_is_named(tmp_path):
  """Each bad flag value is named, in process (a subprocess costs seconds)."""
  benchmark = _benchmark_module()
  existing = tmp_path / "bench.json"
  existing.write_text("keep")
  off = "--network_benchmark=false"
  cases = [(["--sparse_kernels=cuda", off], "'cuda'"),
           ([f"--output={existing}", off], str(existing)),
           (["--images=/nonexistent/*.jpg", off], "/nonexistent"),
           (["--flops_fractions=0.5,-0.25", off], "'-0.25'"),
           (["--halting=random,stripes", off], "'stripes'"),
           (["--families=sact,halting", off], "'halting'"),
           (['--sparse_config={"buckets": 2}', off], "buckets"),
           # Keras ships ResNet-v2 at depths 50, 101 and 152 only.
           (["--keras_model=same"], "--keras_model='same' with "
                                    "--model='1_4_4_1'")]
  try:
    for args, needle in cases:
      benchmark.FLAGS.unparse_flags()
      benchmark.FLAGS(["benchmark", *TINY, *args, "--unit_benchmark=false"])
      with pytest.raises(ValueError) as error:
        benchmark.checked_images()
      assert needle in str(error.value) and "\n" not in str(error.value)
  finally:
    benchmark.FLAGS.unparse_flags()
  assert existing.read_text() == "keep"


def test_bad_input_exits_with_one_line(tmp_path):
  existing = tmp_path / "bench.json"
  existing.write_text("keep")
  result = _run([f"--output={existing}", "--sparse_kernels=cuda",
                 "--unit_benchmark=false"])
  assert result.returncode != 0
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("benchmark: error: ") and "'cuda'" in last, last
  assert existing.read_text() == "keep"


def test_flops_rel_diff():
  benchmark = _benchmark_module()
  assert benchmark.flops_rel_diff([1000, 2000], [1000, 2000]) == 0.0
  # One position of 5e-4 of an image: float rounding at a threshold.
  assert benchmark.flops_rel_diff([1000, 2001], [1000, 2000]) == (
      pytest.approx(5e-4))
  with pytest.raises(AssertionError, match="2.00e-03"):
    benchmark.flops_rel_diff([1002, 2000], [1000, 2000])
  # The optimised models' difference is reported, not asserted.
  assert benchmark.flops_rel_diff([1002, 2000], [1000, 2000],
                                  check=False) == pytest.approx(2e-3)
