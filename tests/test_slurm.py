"""The cluster path: the shipped slurm/ profile, rendered and run on a real SLURM.

1. Rendering (fast): Snakemake itself evaluates the shipped profile for the paper preset (a dry
   run prints every job's resources); the slurm plugin's own `get_submit_command` +
   `set_gres_string` (what its `_submit_job` calls) turn them into the sbatch line. Checked:
   train gets the GPU partition, --gpus=a100:4, one node and 8 CPUs per GPU as
   --cpus-per-task; the report and data rules get the CPU partition and no GPU; downloads are
   local rules that come first in the dry run.
2. The real run (slow, root): a single-node SLURM (tests/slurm_cluster.py) and
   `snakemake --profile slurm` on a reduced tiny target crossing every stage kind (data,
   contexts, sampling, pairs, datasets, training, evaluation, report). Only the partition names
   are overridden (SOLOPO_SLURM_*_PARTITION). Checked: every non-local job went through sbatch
   (job ids in the log, each job known to slurmctld), train with its GPUs on the GPU partition,
   CPU rules on the CPU partition, local rules not submitted, and outputs byte-identical to a
   local run of the same target.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.reduced_pipeline import ENV, ROOT, SNAKEMAKE, comparable_files
from tests.slurm_cluster import CPU_PARTITION, GPU_PARTITION, SlurmCluster, unavailable_reason

PROFILE = ROOT / "slurm"
GPU_RULES = {"sample", "ref_logps", "train", "evaluate"}
LOCAL_RULES = {"download_model", "download_ruler", "download_leaderboard", "fetch_musique", "toy_world",
               "datasets", "bench_data", "all"}


# --------------------------------------------------------------------------- rendering
class _Resources(dict):
    """What the plugin reads from `job.resources`: `.get(k)` and `.k`."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def _value(v: str):
    return int(v) if re.fullmatch(r"-?\d+", v) else v


def dry_run_jobs(*args: str, cwd: Path = ROOT) -> tuple[list[tuple[str, dict]], str]:
    """[(rule, resources)] in the order of `snakemake --profile slurm -n` (Snakemake's own evaluation)."""
    out = subprocess.run([SNAKEMAKE, "--profile", str(PROFILE), "-n", *args], cwd=cwd, env=ENV,
                         capture_output=True, text=True, timeout=900)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    jobs = []
    for block in re.split(r"^(?:local)?rule ", text, flags=re.M)[1:]:
        name = block.split(":", 1)[0].strip()
        m = re.search(r"^\s+resources: (.*)$", block, re.M)
        res = dict(kv.split("=", 1) for kv in m.group(1).split(", ")) if m else {}
        jobs.append((name, _Resources({k: _value(v) for k, v in res.items()})))
    return jobs, text


def render_sbatch(resources: dict, rule: str = "r") -> str:
    """The sbatch line the plugin would run for a job with these resources (minus --wrap)."""
    from snakemake_executor_plugin_slurm import Executor
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = SimpleNamespace(resources=_Resources(resources), threads=1, name=rule, is_group=lambda: False)
    fake_executor = SimpleNamespace(_partitions=None, _fallback_partition="", logger=None)
    params = {"run_uuid": "RUN", "slurm_logfile": f".snakemake/slurm_logs/rule_{rule}/%j.log",
              "comment_str": f"rule_{rule}", "account": "", "workdir": "WORKDIR",
              "partition": Executor.get_partition_arg(fake_executor, job)}
    settings = SimpleNamespace(requeue=False, no_requeue=False, qos=None, reservation=None)
    return get_submit_command(job, params, settings=settings) + set_gres_string(job)


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory):
    return dry_run_jobs("all", "--directory", str(tmp_path_factory.mktemp("paper")),
                        "--snakefile", str(ROOT / "Snakefile"))


def test_paper_dry_run_downloads_first_gpus_only_on_gpu_rules(paper_dry_run):
    jobs, text = paper_dry_run
    rules = [r for r, _ in jobs]
    downloads = [i for i, r in enumerate(rules) if r.startswith("download_") or r == "fetch_musique"]
    assert {"download_model", "download_ruler", "download_leaderboard", "fetch_musique"} <= set(rules)
    assert downloads == list(range(len(downloads))), f"download rules are not first: {rules[:10]}"
    for rule, res in jobs:
        if rule in LOCAL_RULES:
            continue
        if rule in GPU_RULES:
            assert res["slurm_partition"] == "gpu" and res["gpu"] >= 1 and res["nodes"] == 1, (rule, res)
        else:
            assert res["slurm_partition"] == "cpu" and "gpu" not in res, (rule, res)


def test_rendered_sbatch_train_and_report(paper_dry_run):
    jobs, _ = paper_dry_run
    first = {}
    for rule, res in jobs:
        first.setdefault(rule, res)
    lines = {rule: render_sbatch(res, rule) for rule, res in first.items() if rule not in LOCAL_RULES}
    for rule, line in sorted(lines.items()):
        print(f"{rule}: {line}")
    train = lines["train"]
    assert " -p gpu" in train and "--gpus=a100:4" in train and "--nodes=1" in train, train
    # 8 CPUs per GPU, as --cpus-per-task (the plugin lets cpus_per_task win over cpus_per_gpu)
    assert "--cpus-per-task=32" in train and "--cpus-per-gpu" not in train, train
    assert "--ntasks-per-gpu" not in train, train  # one process tree sees all 4 GPUs
    assert "--mem 480000" in train and "-t 1440" in train, train
    report = lines["report_tables"]
    assert " -p cpu" in report and "--gpus" not in report and "--gres" not in report, report
    assert "--cpus-per-task=1" in report and "--mem 4000" in report, report
    for rule in ("contexts", "pairs"):
        assert " -p cpu" in lines[rule] and "--gpus" not in lines[rule], lines[rule]
    # SIGTERM 10 min ahead of the time limit, to the job step (no B:): the GPU jobs save and leave
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra

    for rule in GPU_RULES & lines.keys():
        assert " --signal=TERM@600 " in lines[rule], lines[rule]
        validate_slurm_extra(SimpleNamespace(resources=first[rule]))  # the plugin accepts the option
    assert "--signal" not in report, report


def test_cluster_commands_parse_without_a_core_count(tmp_path):
    """`--profile slurm` gives no --cores: a rule with `threads: workflow.cores` stopped every real
    (non-dry) command while parsing, before anything was submitted."""
    out = subprocess.run([SNAKEMAKE, "--profile", str(PROFILE), "--unlock", "--directory", str(tmp_path),
                          "--snakefile", str(ROOT / "Snakefile")], cwd=ROOT, env=ENV, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and "Unlocked working directory" in out.stdout + out.stderr, (out.stdout + out.stderr)[-2000:]


def test_retry_doubles_memory_and_time():
    """`attempt` reaches the resources: the second attempt of train asks twice the memory and time."""
    import yte

    prof = yte.process_yaml(open(PROFILE / "profile.yaml"), require_use_yte=True)
    assert prof["retries"] >= 1
    train = prof["set-resources"]["train"]
    for key in ("mem_mb", "runtime"):
        assert eval(str(train[key]), {"attempt": 2}) == 2 * eval(str(train[key]), {"attempt": 1})  # noqa: S307


# --------------------------------------------------------------------------- the real run
REDUCED = """
tiny_model: {steps: 60}
data: {toy: {train_questions: 24, dev_questions: 12}}
train:
  methods: [orpo_short, solo_orpo]
  lambdas: {solo_orpo: [1.0]}
eval:
  benchmarks: [ruler]
  runs_include_base: false
  ruler: {num_samples: 2}
"""
TARGETS = ["results/pairs/tiny/pair_stats.json", "results/report/summary.csv"]
# The shipped profile, with its first status check 2 s (not 10 s) after a submission or a finished job:
# the tiny jobs take seconds, and the profile's cluster-sized interval would be most of the test's wall time.
CLUSTER_PROFILE = ["--profile", str(PROFILE), "--slurm-init-seconds-before-status-checks", "2"]


@pytest.fixture(scope="module")
def slurm_cluster():
    reason = unavailable_reason()
    if reason:
        print(f"\nSKIPPED single-node SLURM test: {reason}")
        pytest.skip(reason)
    cluster = SlurmCluster().start()
    print(f"\nsingle-node SLURM up in {cluster.start_s:.1f} s ({cluster.dir})")
    yield cluster
    left = cluster.stop()
    assert not left, f"SLURM/munge processes left behind: {left}"


def _snakemake(workdir: Path, profile: list[str], env: dict, targets: list[str] = TARGETS) -> subprocess.Popen:
    (workdir / "reduced.yaml").write_text(REDUCED)
    log = open(workdir / "snakemake.log", "a")
    return subprocess.Popen([SNAKEMAKE, *targets, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
                             *profile, "--configfile", str(ROOT / "config/tiny.yaml"), str(workdir / "reduced.yaml")],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_profile_runs_on_a_real_slurm(slurm_cluster, tmp_path):
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"
    local_dir.mkdir(), slurm_dir.mkdir()
    env = {**ENV, **slurm_cluster.env, "SOLOPO_SLURM_CPU_PARTITION": CPU_PARTITION,
           "SOLOPO_SLURM_GPU_PARTITION": GPU_PARTITION}
    local_profile = ["--profile", str(ROOT / "profiles/local")]
    # The tiny backbone (the stand-in for a downloaded model) is pre-trained once, locally, and
    # given to both runs; the cluster run then does every stage from the data on.
    assert _snakemake(local_dir, local_profile, ENV, ["results/models/tiny"]).wait(timeout=900) == 0, \
        (local_dir / "snakemake.log").read_text()[-3000:]
    shutil.copytree(local_dir / "results/models/tiny", slurm_dir / "results/models/tiny")
    t0 = time.time()
    # The local reference run of the same target runs alongside: the cluster run mostly waits.
    cluster = _snakemake(slurm_dir, CLUSTER_PROFILE, env)
    local = _snakemake(local_dir, local_profile, ENV)
    try:
        for p in (cluster, local):
            p.wait(timeout=1500)
    finally:  # a timeout or an interrupt: end both runs (the cluster's own teardown cancels its jobs)
        for p in (cluster, local):
            if p.poll() is None:
                p.kill()
                p.wait()
    wall = time.time() - t0
    log = (slurm_dir / "snakemake.log").read_text()
    assert cluster.returncode == 0, log[-5000:] + slurm_cluster.logs()[-3000:]
    assert local.returncode == 0, (local_dir / "snakemake.log").read_text()[-4000:]

    # every non-local job went through sbatch; slurmctld knows each id, its partition and its GPUs
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.", log)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", log, re.M))
    total = int(counts.pop("total"))
    expected_remote = {r: int(n) for r, n in counts.items() if r not in LOCAL_RULES}
    print(f"\nSLURM run: {wall:.0f} s wall (with the local reference run alongside), {total} jobs, "
          f"{len(submitted)} through sbatch: {expected_remote}")
    assert len(submitted) == sum(expected_remote.values()), (expected_remote, submitted)
    by_rule: dict[str, list[dict]] = {}
    for _, jobid, slurm_log in submitted:
        info = slurm_cluster.job(jobid)
        rule = info["Comment"].removeprefix("rule_").split("_wildcards_")[0]
        by_rule.setdefault(rule, []).append(info)
        assert info["JobState"] == "COMPLETED", info
        assert Path(slurm_log).exists(), slurm_log  # kept (slurm-keep-successful-logs)
    assert {r: len(v) for r, v in by_rule.items()} == expected_remote
    assert {"contexts", "sample", "pairs", "train", "bench_data_tokenized", "evaluate", "report_tables"} <= by_rule.keys()
    assert not LOCAL_RULES & by_rule.keys(), "a local rule was submitted"
    for rule, infos in by_rule.items():
        for info in infos:
            gpus = info.get("TresPerJob", "")  # what --gpus asked for, e.g. gres:gpu:a100:4
            if rule in GPU_RULES:
                assert info["Partition"] == GPU_PARTITION and info["NumNodes"] == "1", info
                assert gpus == f"gres:gpu:a100:{4 if rule == 'train' else 1}", (rule, info)
            else:
                assert info["Partition"] == CPU_PARTITION and "gpu" not in gpus, (rule, info)
            if rule == "train":  # the profile's request, granted as asked: 8 CPUs per GPU, one node
                assert info["NumCPUs"] == "32" and info["MinMemoryNode"] == "480000M", info
    for rule in ("toy_world", "datasets"):  # local rules: ran on the submitting host, no sbatch
        assert re.search(rf"^localrule {rule}:", log, re.M), rule

    # the same bytes as the local run of the same target and seed
    a, b = comparable_files(local_dir / "results"), comparable_files(slurm_dir / "results")
    assert a.keys() == b.keys()
    for must in ("pairs/tiny/pairs.jsonl", "datasets/tiny/solo.jsonl", "train/solo_orpo/model/model.safetensors",
                 "eval/solo_orpo_ruler.json", "eval/orpo_short_ruler.json", "report/summary.csv"):
        assert must in a, must
    differ = [name for name in a if a[name].read_bytes() != b[name].read_bytes()]
    assert differ == [], f"SLURM run differs from the local run: {differ}"


# --------------------------------------------------------------------------- scancel mid-training
# One train job on hand-made inputs (`--allowed-rules train`: the pipeline before it is covered
# above): a random backbone of the tiny preset's shape and 64 long rows, 80 steps of ~0.1-0.5 s.
# Periodic checkpoints every 20 steps only: a resume from a step past the last periodic one can
# only come from the checkpoint the job wrote after the signal.
CANCEL = """
train:
  methods: [orpo_short]
  lambdas: {}
  report_to: none
  optim: {epochs: 5, batch_size: 4, micro_batch_size: 1, max_length: 512, save_steps: 20, keep_checkpoints: 2}
"""
CANCEL_RUN = "orpo_short"
SAVE_STEPS = 20


def _train_inputs(workdir: Path, tokenizer_dir: str) -> None:
    """results/models/tiny (random weights, the tiny preset's shape) and the run's training rows."""
    from transformers import AutoTokenizer

    from solopo.tiny_model import build_model

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    model_dir = workdir / "results/models/tiny"
    build_model(tok, 128, 2, 4, 2, 256, 1024, seed=0).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    filler = " ".join(f"Paragraph {i} mentions city {i % 7} ." for i in range(12))  # ~350 tokens
    rows = [{"id": f"q{i}", "x": f"{filler} Question {i} ?", "x_long": f"{filler} Question {i} , long ?",
             "y_w": f"right answer {i} . The answer is: A{i}", "y_l": "wrong . The answer is: B"} for i in range(64)]
    data = workdir / "results/datasets/tiny/short.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (workdir / "cancel.yaml").write_text(CANCEL)


def _train_job(workdir: Path, profile: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([SNAKEMAKE, f"results/train/{CANCEL_RUN}/model", "--allowed-rules", "train",
                             "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), *profile,
                             "--configfile", str(ROOT / "config/tiny.yaml"), str(workdir / "cancel.yaml")],
                            cwd=ROOT, env=env, stdout=open(workdir / "snakemake.log", "a"), stderr=subprocess.STDOUT)


def _steps_logged(log: Path) -> list[tuple[int, int]]:
    """(step, total) of every per-step line the training job wrote so far (solopo.train.monitor)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return [(int(a), int(b)) for a, b in re.findall(r"\bstep (\d+)/(\d+) loss ", text)]


@pytest.mark.slow
def test_scancel_mid_training_saves_a_checkpoint_and_the_retry_resumes_from_it(slurm_cluster, tmp_path, tiny_lm_dir):
    """`scancel` sends SIGTERM to the job's processes (SIGKILL after SLURM's KillWait): the training
    job saves the checkpoint of its next step boundary and exits with one line; the profile's retry
    resumes from that checkpoint, not from the last periodic one, and ends with the weights of an
    uninterrupted (local) run."""
    job, ref = tmp_path / "slurm", tmp_path / "ref"
    _train_inputs(job, tiny_lm_dir)
    shutil.copytree(job, ref)
    env = {**ENV, **slurm_cluster.env, "SOLOPO_SLURM_CPU_PARTITION": CPU_PARTITION,
           "SOLOPO_SLURM_GPU_PARTITION": GPU_PARTITION}
    cluster = _train_job(job, CLUSTER_PROFILE, env)
    reference = _train_job(ref, ["--profile", str(ROOT / "profiles/local")], ENV)
    train_log = job / f"logs/train/{CANCEL_RUN}.log"
    try:
        t0 = time.time()
        while not any(s >= SAVE_STEPS + 3 for s, _ in _steps_logged(train_log)):  # past the periodic checkpoint
            assert cluster.poll() is None, (job / "snakemake.log").read_text()[-4000:] + slurm_cluster.logs()[-2000:]
            assert time.time() - t0 < 1200, "the train job did not reach its step 23"
            time.sleep(0.05)
        jobid = re.findall(r"submitted with SLURM jobid (\d+)", (job / "snakemake.log").read_text())[-1]
        seen, total = _steps_logged(train_log)[-1]
        assert total >= 3 * SAVE_STEPS, total  # far from its end: the stop comes from the signal
        t_cancel = time.time()
        slurm_cluster.run(["scancel", jobid])
        while slurm_cluster.run(["squeue", "-h", "-j", jobid, "-o", "%T"], check=False).stdout.strip() in (
                "RUNNING", "COMPLETING"):
            assert time.time() - t_cancel < 120, "the cancelled job did not end within 120 s"
            time.sleep(0.1)
        left_after = time.time() - t_cancel
        assert cluster.wait(timeout=1500) == 0, (job / "snakemake.log").read_text()[-5000:]
        assert reference.wait(timeout=1500) == 0, (ref / "snakemake.log").read_text()[-4000:]
    finally:
        for p in (cluster, reference):
            if p.poll() is None:
                p.kill()
                p.wait()

    info = slurm_cluster.job(jobid)
    assert info["JobState"] == "CANCELLED", info
    first_log = Path(info["StdOut"]).read_text(errors="replace")
    hit = re.search(rf"^interrupted \(SIGTERM\) after step (\d+) of {total}: saved checkpoint "
                    rf"results/checkpoints/{CANCEL_RUN}/step-(\d+); the rerun resumes from it$", first_log, re.MULTILINE)
    assert hit and hit.group(1) == hit.group(2), first_log[-4000:]
    stopped_at = int(hit.group(1))
    periodic = seen // SAVE_STEPS * SAVE_STEPS  # the last periodic checkpoint before the signal
    print(f"\nscancel after step {seen}/{total} was logged: the job saved step {stopped_at} "
          f"({stopped_at - seen} step(s) later) and left the queue {left_after:.1f} s after scancel; "
          f"last periodic checkpoint: step {periodic}")
    assert periodic < seen <= stopped_at <= seen + 3, (periodic, seen, stopped_at)  # the step under way, about
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", (job / "snakemake.log").read_text())
    assert len(submitted) == 2 and submitted[0] == jobid, submitted  # the profile's retry
    model, ref_model = job / f"results/train/{CANCEL_RUN}/model", ref / f"results/train/{CANCEL_RUN}/model"
    stats = json.loads((model / "manifest.json").read_text())["stats"]
    assert stats["resumed_from_step"] == stopped_at, stats
    ref_stats = json.loads((ref_model / "manifest.json").read_text())["stats"]
    assert ref_stats["resumed_from_step"] == 0 and stats["checkpoints"] == ref_stats["checkpoints"]
    for name in ("model.safetensors", "train_log.jsonl"):
        assert (model / name).read_bytes() == (ref_model / name).read_bytes(), name
