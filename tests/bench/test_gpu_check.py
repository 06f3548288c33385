"""The prepared GPU check: its CPU rehearsal runs end to end, as on the GPU image (trl,
deepspeed, snakemake, vLLM, matplotlib ... unimportable), and leaves the JSON, markdown and PNG fields
the README table is built from."""
import json
import math
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from solopo.bench import gpu_check

ROOT = Path(__file__).resolve().parents[2]
ROW_FIELDS = ("long_len", "vanilla_step_s", "solo_step_s", "vanilla_oom", "solo_oom", "runtime_cut_pct",
              "ratio_measured", "ratio_pred_linear_attention", "vanilla_peak_mb", "solo_peak_mb")


def _png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and raw scanlines of an 8-bit RGB PNG (what both plot writers produce)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, colour = ihdr
    return w, h, zlib.decompress(idat) if (depth, colour) == (8, 2) else b""


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OUT": str(out)}
    proc = subprocess.run([str(ROOT / "scripts" / "gpu_check.sh"), "--cpu-rehearsal"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    return out, proc


@pytest.mark.bench
def test_rehearsal_passes_and_writes_the_readme_fields(rehearsal):
    out, proc = rehearsal
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    s = json.loads((out / "gpu_check.json").read_text())
    assert s["passed"] and s["rehearsal"] and all(s["checks"].values()), s["checks"]
    assert {"trl", "deepspeed", "snakemake", "vllm", "matplotlib"} <= set(s["environment"]["made_unimportable"])
    assert s["plot"] == "builtin"  # matplotlib was unimportable, as on the GPU image
    for key in ("torch", "transformers", "cuda_available"):
        assert key in s["environment"]
    e = s["efficiency"]
    for key in ("device", "dtype", "attention_impl", "gradient_checkpointing", "short_len", "response_len",
                "static_mb", "device_memory_mb"):
        assert e[key] is not None, key
    assert e["model"]["name"] == "rehearsal" and e["model"]["total_params"] > 0
    assert len(e["rows"]) >= 3 and all(set(ROW_FIELDS) <= set(r) for r in e["rows"])
    timed = [r for r in e["rows"] if r["vanilla_step_s"] and r["solo_step_s"]]
    assert timed and all(r["vanilla_peak_mb"] > 0 and r["solo_peak_mb"] > 0 for r in timed)
    ml = e["max_length"]
    # the emulated device runs out of memory: vanilla first, SoLo (which holds one long sequence) later
    assert ml["vanilla"] and ml["solo"] and ml["solo"] > ml["vanilla"] and ml["ratio"] > 1
    assert any(r["vanilla_oom"] for r in e["rows"])
    t = s["tiny"]
    assert set(t["train"]) == {"solo_orpo", "orpo_long"}
    assert all(m["losses"] and all(math.isfinite(x) for x in m["losses"]) for m in t["train"].values())
    assert {r: set(b) for r, b in t["eval"].items()} == {r: {"ruler", "longbench_v1"}
                                                        for r in ("base", "solo_orpo", "orpo_long")}
    md = (out / "gpu_check.md").read_text()
    assert "Longest trainable x_long" in md and "| solo_orpo |" in md and "| orpo_long |" in md
    for r in e["rows"]:
        assert f"| {gpu_check._k(r['long_len'])} |" in md
    w, h, raw = _png_pixels(out / "efficiency.png")
    assert w > 600 and h > 200 and len(raw) == h * (1 + 3 * w)
    ink = sum(1 for i in range(0, len(raw) - 2, 3) if raw[i:i + 3] not in (b"\xff\xff\xff",))
    assert ink > 0.01 * w * h  # something was drawn


def test_checks_fail_on_non_finite_losses_and_missing_results():
    tiny = {"checks": {"losses_finite": False, "scores_produced": True}}
    eff = {"rows": [{"vanilla_step_s": 1.0, "solo_step_s": 0.5}], "max_length": {"vanilla": 4096, "solo": None}}
    c = gpu_check.checks(tiny, eff)
    assert c["tiny_losses_finite"] is False and c["efficiency_max_length_found"] is False
    assert gpu_check.checks(None, None) == {"tiny_ran": False, "efficiency_both_methods_timed": False,
                                            "efficiency_max_length_found": False}


def test_forbidden_imports_look_uninstalled():
    code = ("import importlib.util, sys; from solopo.bench.gpu_check import forbid_imports; forbid_imports(); "
            "assert importlib.util.find_spec('trl') is None\ntry:\n import deepspeed\nexcept ImportError: pass\n"
            "else: sys.exit(3)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_no_gpu_without_rehearsal_is_a_clear_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    proc = subprocess.run([str(ROOT / "scripts" / "gpu_check.sh"), "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no CUDA GPU" in proc.stderr and "--cpu-rehearsal" in proc.stderr
