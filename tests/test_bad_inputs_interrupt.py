"""Ctrl-C stops a running job within seconds and leaves nothing that looks finished.

The local profile runs jobs as threads of the Snakemake process; Snakemake waits for running
threads when interrupted, so before this fix a job ran on to its end (~80 s for a training job)
after Ctrl-C. Here a real `snakemake` (local profile) pre-trains the tiny backbone with far too
many steps; SIGINT goes to its process group as a terminal's Ctrl-C does.
"""
import os
import re
import signal
import subprocess
import time

import pytest

from tests.reduced_pipeline import ENV, ROOT, SNAKEMAKE


@pytest.mark.slow
def test_ctrl_c_stops_a_running_job_within_seconds(tmp_path):
    (tmp_path / "long.yaml").write_text("tiny_model: {steps: 1000000}\n")
    log = tmp_path / "logs/models/tiny_model.log"
    proc = subprocess.Popen([SNAKEMAKE, "results/models/tiny", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                             str(tmp_path), "--profile", str(ROOT / "profiles/local"), "--configfile",
                             str(ROOT / "config/tiny.yaml"), str(tmp_path / "long.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, start_new_session=True)
    try:
        t0 = time.time()
        while not (log.exists() and re.search(r"pretrain:.*\| *[1-9]\d*/1000000", log.read_text())):  # steps are running
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.time() - t0 < 300, "pre-training did not start"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        t_int = time.time()
        out, _ = proc.communicate(timeout=60)
        stopped_after = time.time() - t_int
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert stopped_after < 15, f"Snakemake needed {stopped_after:.0f} s to stop after Ctrl-C:\n{out[-3000:]}\n{log.read_text()[-1500:]}"
    assert "interrupted (Ctrl-C)" in log.read_text(), log.read_text()[-2000:]
    # nothing under the output name; only hidden temporary names may remain
    models = tmp_path / "results/models"
    assert not (models / "tiny").exists()
    assert [p.name for p in models.iterdir() if not p.name.startswith(".")] == [] if models.exists() else True
