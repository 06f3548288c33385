"""Two-process DeepSpeed training on CPU, through the workflow's own launcher path:
pipeline.train -> launch_deepspeed -> `accelerate launch --config_file <shipped yaml>` ->
solopo.train.launch -> distributed.train_deepspeed, with DS_ACCELERATOR=cpu (gloo) and
SOLOPO_TRAIN_PROCESSES=2.

The data leave a ragged last batch: 13 rows, batch 6, micro-batch 2, 2 ranks -> 2 micro-batches
per rank per step; step 1 and 2 give one rank a micro-batch of 1 row, step 3 holds a single row,
so rank 1 has no row at all (the case that hung for ever before).

Tolerance: the 2-rank weights equal the single-process trainer's within atol 2e-5 (fp32; the
sums run in another order; measured max |diff| 4e-7 to 3.5e-6 with lr 5e-3, and the weights move by
> 1e-2 from the start). A resumed run equals the uninterrupted one within the same bound.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from solopo.train.distributed import rank_micro_batches

ATOL = 2e-5
ROWS = 13
OPTIM = {"learning_rate": 5e-3, "sft_learning_rate": 5e-3, "epochs": 1, "batch_size": 6, "micro_batch_size": 2,
         "warmup_ratio": 0.1, "max_length": 96, "save_steps": 1, "keep_checkpoints": 1, "dtype": "float32"}
LOSS = {"beta": 0.1, "simpo_beta": 2.5, "gamma": 0.5, "orpo_lambda": 0.1, "longpo_beta": 0.1, "longpo_lambda": 0.01}
SEED = 7
DRIVER = """
import json, os, sys
os.chdir(sys.argv[1])
from solopo import pipeline
pipeline.train("rows.jsonl", None, sys.argv[2], "results/train/r/model", "r", "solo_orpo", 1.0,
               json.load(open("cfg.json")), %d, "logs/train/r.log")
""" % SEED


def _rows(n=ROWS):
    return [{"id": f"q{i}", "x": f"Question {i} ?", "x_long": f"Long documents about {i} . Question {i} ?",
             "y_w": f"yes {i} . The answer is: A", "y_l": "no . The answer is: B"} for i in range(n)]


def _cfg(stage: str, **train) -> dict:
    return {"train": {"loss": LOSS, "optim": dict(OPTIM), "deepspeed": stage, "select_checkpoint": "final",
                      "report_to": "tensorboard", "collective_timeout_s": 120, **train}}


def _env(**extra) -> dict:
    return {**os.environ, "DS_ACCELERATOR": "cpu", "SOLOPO_TRAIN_PROCESSES": "2", "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1", "DS_BUILD_OPS": "0", "TOKENIZERS_PARALLELISM": "false", **extra}


def _prepare(work: Path, cfg: dict) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    (work / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    (work / "cfg.json").write_text(json.dumps(cfg))
    (work / "driver.py").write_text(DRIVER)
    return work


def _start(work: Path, model: str, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(work / "driver.py"), str(work), model], env=_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return out


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def single_process(tiny_lm_dir, tmp_path_factory) -> dict[str, torch.Tensor]:
    """The single-process trainer on the same rows, seed, global batch and config."""
    from solopo import pipeline
    from solopo.train.trainer import train

    cfg, out = _cfg("none"), tmp_path_factory.mktemp("single")
    tcfg = pipeline.train_config(cfg, "solo_orpo")
    tcfg.report_to, tcfg.save_steps = "none", 0
    train(tiny_lm_dir, _rows(), "solo_orpo", pipeline.loss_config(cfg, "solo_orpo", 1.0), tcfg, SEED,
          out / "model", out / "ck")
    _SINGLE_LOG[:] = [json.loads(x) for x in (out / "model" / "train_log.jsonl").read_text().splitlines()]
    return _weights(out / "model")


_SINGLE_LOG: list[dict] = []  # the single-process run's train log (the fixture above fills it)


def _lengths(log: list[dict]) -> list[tuple[float, float]]:
    return [(r["tokens/po"], r["tokens/long"]) for r in log]


_RUNS: dict[str, Path] = {}


def _uninterrupted(stage: str, model: str, root: Path) -> Path:
    """One complete 2-rank run per ZeRO stage (shared by the equality and the resume tests)."""
    if stage not in _RUNS:
        work = _prepare(root / f"full_{stage}", _cfg(stage))
        proc = _start(work, model)
        out = _finish(proc)
        assert proc.returncode == 0, out[-3000:] + (work / "logs/train/r.log").read_text()[-3000:]
        _RUNS[stage] = work
    return _RUNS[stage]


def test_every_rank_gets_the_same_number_of_micro_batches():
    for n_rows, batch, micro, world in [(13, 6, 2, 2), (33, 8, 2, 2), (1, 8, 4, 4), (64, 64, 1, 4), (10, 8, 3, 2)]:
        order = list(range(n_rows))
        accum = -(-batch // (micro * world))
        for start in range(0, n_rows, batch):
            b = order[start : start + batch]
            plans = [rank_micro_batches(b, world, r, micro, accum) for r in range(world)]
            assert all(len(p) == accum for p in plans)  # every rank joins every micro-step
            assert all(len(mb) <= micro for p in plans for mb in p)
            assert sorted(i for p in plans for mb in p for i in mb) == b  # each row exactly once
            # per-micro-batch weight n * accum * world / B, then DeepSpeed's 1/accum and 1/world: sums to 1
            assert sum(len(mb) for p in plans for mb in p) * accum * world / len(b) / (accum * world) == 1


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_two_ranks_equal_single_process_on_a_ragged_last_batch(stage, tiny_lm_dir, single_process, tmp_path_factory):
    from transformers import AutoModelForCausalLM

    work = _uninterrupted(stage, tiny_lm_dir, tmp_path_factory.mktemp(stage))
    model_dir = work / "results/train/r/model"
    stats = json.loads((model_dir / "manifest.json").read_text())["stats"]
    assert stats["world_size"] == 2 and stats["deepspeed"] == stage and stats["steps"] == 3
    got = _weights(model_dir)
    diff = _max_diff(got, single_process)
    moved = _max_diff(got, _weights(Path(tiny_lm_dir)))
    print(f"{stage}: max |2-rank - 1-process| = {diff:.2e}; max |trained - initial| = {moved:.2e}")
    assert diff <= ATOL and moved > 100 * ATOL
    # observability: a line per optimizer step, TensorBoard files, a model card, a bounded checkpoint folder
    log = (work / "logs/train/r.log").read_text()
    for step in (1, 2, 3):
        assert f"step {step}/3 loss " in log and "tokens/s" in log
    assert f"DeepSpeed {stage}: ZeRO stage {stage[-1]}, optimizer offload none, parameter offload none" in log
    assert list((model_dir / "tensorboard").glob("events.out.tfevents.*"))
    card = (model_dir / "README.md").read_text()
    assert "solo_orpo" in card and stats["world_size"] == 2 and f"`{stage}`, 2 process(es)" in card
    assert [p.name for p in (work / "results/checkpoints/r").glob("step-*")] == ["step-3"]  # keep_checkpoints: 1
    # the logged sequence lengths are the global batch's (summed over ranks, the stand-in row not counted)
    two_rank = [json.loads(x) for x in (model_dir / "train_log.jsonl").read_text().splitlines()]
    assert _lengths(two_rank) == _lengths(_SINGLE_LOG) and all(0 < po < long for po, long in _lengths(two_rank))
    loaded = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    assert max(float((loaded[k] - v).abs().max()) for k, v in got.items()) == 0


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_gives_the_same_weights(tiny_lm_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    reference = _weights(_uninterrupted("zero3", tiny_lm_dir, root) / "results/train/r/model")
    work = _prepare(root / "killed", _cfg("zero3"))
    proc = _start(work, tiny_lm_dir, SOLOPO_TEST_STALL_AFTER_STEP="1")  # every rank waits after checkpoint 1
    done = work / "results/checkpoints/r/step-1/COMPLETE"
    deadline = time.time() + 240
    while not done.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert done.exists(), _finish(proc, 5)[-3000:]
    tree = _descendants(proc.pid)
    assert len(tree) >= 3  # the accelerate launcher and its two ranks
    os.kill(proc.pid, signal.SIGKILL)  # the job process dies: the launcher and the ranks must follow
    proc.wait()
    left = _wait_gone(tree, 30)
    for pid in left:  # never leave them running, even when the assertion below fails
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"processes left running after SIGKILL of the job: {left}"
    proc = _start(work, tiny_lm_dir)
    out = _finish(proc)
    assert proc.returncode == 0, out[-3000:]
    model_dir = work / "results/train/r/model"
    assert json.loads((model_dir / "manifest.json").read_text())["stats"]["resumed_from_step"] == 1
    diff = _max_diff(_weights(model_dir), reference)
    print(f"resumed vs uninterrupted zero3: max |diff| = {diff:.2e}")
    assert diff <= ATOL
    assert [p.name for p in (work / "results/checkpoints/r").glob("step-*")] == ["step-3"]


@pytest.mark.slow
def test_a_stuck_rank_fails_the_job_instead_of_hanging(tiny_lm_dir, tmp_path):
    work = _prepare(tmp_path / "stuck", _cfg("zero2", collective_timeout_s=5))
    t0 = time.time()
    proc = _start(work, tiny_lm_dir, SOLOPO_TEST_STALL_AFTER_STEP="1:1")  # rank 1 stops taking part after step 1
    out = _finish(proc, 240)
    took = time.time() - t0
    assert proc.returncode != 0
    assert "DeepSpeed process(es) failed" in out, out[-3000:]
    assert "timed out" in (work / "logs/train/r.log").read_text().lower()
    assert not (work / "results/train/r/model").exists()
    print(f"stuck rank: the job failed after {took:.0f} s (collective timeout 5 s)")


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
        if not alive:
            return []
        time.sleep(0.5)
    return alive


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


@pytest.mark.slow
def test_sigterm_to_every_process_stops_all_ranks_at_one_step_with_a_checkpoint(tiny_lm_dir, tmp_path):
    """SIGTERM to the job's whole process tree, as SLURM sends it to a job step (scancel, the
    profile's --signal before the time limit): the ranks agree on one step, write its checkpoint
    together and leave; the job exits 143 with one line; the rerun resumes there and ends with
    the weights of an uninterrupted run. Before, torch's launcher killed the ranks, or a rank that
    stopped alone left the other waiting in a collective."""
    from solopo.stage import write_call

    cfg = _cfg("zero2")
    cfg["train"]["optim"].update(batch_size=2, micro_batch_size=1, save_steps=1000)  # 40 steps, no periodic save

    def start(work: Path) -> subprocess.Popen:
        work.mkdir(parents=True)
        (work / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(80)))
        call = write_call(work / "r.log.call.yaml", "pipeline.train", ["rows.jsonl", None, tiny_lm_dir,
                          "results/train/r/model", "r", "solo_orpo", 1.0, cfg, SEED, "logs/train/r.log"], {})
        return subprocess.Popen([sys.executable, "-m", "solopo", "stage", str(call)], cwd=work, env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    ref = start(tmp_path / "ref")
    assert ref.wait(timeout=600) == 0, ref.communicate()[1][-3000:]
    work = tmp_path / "job"
    proc = start(work)
    log = work / "logs/train/r.log"
    # rank 0's TensorBoard file grows at every step (the ranks' log lines reach the job log late)
    events, first = work / "results/checkpoints/r/tensorboard", None
    deadline = time.time() + 300
    while True:
        sizes = [f.stat().st_size for f in events.glob("events.out.tfevents.*")] if events.is_dir() else []
        first = first if first is not None or not sizes else sizes[0]
        if sizes and sizes[0] > first:  # a step is done: the training is under way
            break
        assert proc.poll() is None and time.time() < deadline, (log.read_text() if log.exists() else "")[-3000:]
        time.sleep(0.02)
    tree = _descendants(proc.pid)
    assert len(tree) >= 3  # the accelerate launcher and its two ranks (each in its own session)
    for pid in [proc.pid, *tree]:  # every process of the job, as SLURM signals a job step
        os.kill(pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    left = _wait_gone(tree, 30)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 143 and left == [], (proc.returncode, left, err[-3000:], log.read_text()[-3000:])
    last = err.strip().splitlines()[-1]
    hit = re.fullmatch(r"interrupted \((?:SIGTERM|stop request)\) after step (\d+) of 40: saved checkpoint "
                       r"results/checkpoints/r/step-\1; the rerun resumes from it", last)
    assert hit, err[-3000:]
    step = int(hit.group(1))
    ck = work / f"results/checkpoints/r/step-{step}"
    assert 1 <= step < 30 and (ck / "INTERRUPTED").exists() and (ck / "state").is_dir(), step
    assert [p.name for p in (work / "results/checkpoints/r").glob("step-*")] == [f"step-{step}"]
    assert not (work / "results/train/r/model").exists()

    rerun = subprocess.Popen([sys.executable, "-m", "solopo", "stage", "r.log.call.yaml"], cwd=work, env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert rerun.wait(timeout=600) == 0, rerun.communicate()[1][-3000:]
    model = work / "results/train/r/model"
    stats = json.loads((model / "manifest.json").read_text())["stats"]
    assert stats["resumed_from_step"] == step and stats["checkpoints"] == ["step-40"], stats
    diff = _max_diff(_weights(model), _weights(tmp_path / "ref/results/train/r/model"))
    print(f"SIGTERM after step 1: all ranks stopped after step {step}; resumed vs uninterrupted max |diff| {diff:.2e}")
    assert diff <= ATOL


def test_an_empty_micro_batch_runs_a_short_stand_in_row():
    """A ragged last batch leaves some micro-batches empty; each runs a stand-in row with weight 0 that is
    short whatever the real rows' lengths (a copy of a 9K-token row cost a full forward and backward)."""
    from solopo.train.distributed import stand_in_row

    row = {"id": "q1", "x": "doc " * 5000, "x_long": "doc " * 9000, "y_w": "yes . The answer is: A",
           "y_l": "no . The answer is: B", "extra": 1}
    s = stand_in_row(row)
    assert set(s) == set(row) and s["id"] == "q1" and s["extra"] == 1
    assert len(s["x"] + s["x_long"] + s["y_w"] + s["y_l"]) < 10 and s["y_w"] != s["y_l"]
