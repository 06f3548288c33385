"""A few training steps through DeepSpeed (ZeRO-2, one CPU process), in a subprocess."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    from solopo.train.losses import LossConfig
    from solopo.train.setup import TrainConfig
    from solopo.train.trainer import train
    rows = [{"id": f"q{i}", "x": f"Question {i} ?", "x_long": f"Long documents . Question {i} ?",
             "y_w": f"yes {i} . The answer is: A", "y_l": "no . The answer is: B"} for i in range(8)]
    cfg = TrainConfig(learning_rate=1e-3, batch_size=4, micro_batch_size=2, max_length=128, save_steps=1, dtype="float32")
    stats = train(sys.argv[1], rows, "solo_orpo", LossConfig(alpha=1.0), cfg, 0, sys.argv[2], sys.argv[3], deepspeed="zero2")
    print("STATS" + json.dumps(stats))
""")


@pytest.mark.slow
def test_deepspeed_zero2_cpu_steps(tiny_lm_dir, tmp_path):
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29531", "RANK": "0", "LOCAL_RANK": "0",
           "WORLD_SIZE": "1", "DS_BUILD_OPS": "0"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, tiny_lm_dir, str(tmp_path / "out"), str(tmp_path / "ck")],
                         capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    stats = json.loads(out.stdout.split("STATS")[-1])
    assert stats["deepspeed"] == "zero2" and stats["steps"] == 2
    assert (tmp_path / "out" / "model.safetensors").exists()
    log = [json.loads(x) for x in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all("ra_term" in r for r in log)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["step-1", "step-2"]
