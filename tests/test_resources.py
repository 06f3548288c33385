"""Memory predicted before work (solopo.resources): a job that cannot fit stops before it deletes or
writes anything, with one line naming the keys; the paper and tiny presets fit with margin."""
import copy
from pathlib import Path

import pytest

from solopo import pipeline, resources
from solopo.artifacts import write_jsonl, write_manifest
from solopo.report.provenance import load_config
from solopo.resources import GIB, ModelShape, ResourceError

ROOT = Path(__file__).resolve().parents[1]
TINY = load_config([ROOT / "config/tiny.yaml"], ROOT / "config/config.yaml")
PAPER = load_config([], ROOT / "config/config.yaml")
# Qwen2.5-7B-Instruct's config.json (the paper preset's primary backbone)
QWEN7B = ModelShape(layers=28, hidden=3584, heads=28, kv_heads=4, head_dim=128, intermediate=18944, vocab=152064,
                    tied=False)


def _contexts(tmp_path, n_rows=2):
    rows = [{"id": f"q{i}", "ctx": "short", "prompt": f"question {i}?", "answers": ["a"]} for i in range(n_rows)]
    ctx = tmp_path / "ctx.jsonl"
    write_manifest(ctx, {}, [], None, {"rows": n_rows})
    write_jsonl(ctx, rows)
    return ctx


def test_sampling_that_cannot_fit_stops_before_touching_the_resume_file(tiny_lm_dir, tmp_path, monkeypatch):
    """Was: sampling.n 10000 deleted the resumable samples, then grew past 22 GB until the kernel killed Snakemake."""
    cfg = copy.deepcopy(TINY)
    cfg["sampling"].update(n=256, max_new_tokens=512, batch_size=64, shard_size=2)
    ctx = _contexts(tmp_path)
    out = tmp_path / "samples.jsonl"
    partial = tmp_path / "samples.jsonl.tmp-samples.partial"
    partial.write_text('{"id": "q0", "responses": ["kept"]}\n')
    key = Path(str(partial) + ".key")
    key.write_text("samples of other settings\n")
    est = resources.for_sampling([{"prompt": "question 0?"}] * 2, tiny_lm_dir, cfg["sampling"], str(out))
    monkeypatch.setenv(resources.MEM_MB_VAR, str(int(est.total / 2**20 / 2)))  # half of what it needs
    with pytest.raises(ResourceError) as e:
        pipeline.sample(str(ctx), tiny_lm_dir, str(out), cfg, 1, str(tmp_path / "s.log"), {})
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"sample {out}: predicted memory ")
    assert "lower sampling.n, sampling.batch_size, sampling.max_new_tokens" in msg and "its mem_mb resource" in msg
    assert partial.read_text() == '{"id": "q0", "responses": ["kept"]}\n' and key.read_text() == "samples of other settings\n"
    assert not out.exists() and not Path(str(out) + ".manifest.json").exists()


def test_the_sampling_estimate_counts_every_sequence_in_flight(tiny_lm_dir):
    shape = resources.model_shape(tiny_lm_dir)
    s = {"backend": "hf", "n": 8, "max_new_tokens": 40, "batch_size": 16}
    small = resources.sampling_estimate(shape, 64, 400, s, "cpu", "x")
    big = resources.sampling_estimate(shape, 64, 400, dict(s, n=256), "cpu", "x")
    def kv(e):
        return next(v for k, v in e.parts.items() if k.startswith("KV cache"))
    assert kv(small) == 16 * 8 * 440 * shape.kv_bytes_per_token(4) and kv(big) == 32 * kv(small)
    assert resources.sampling_estimate(shape, 64, 400, s, "cuda", "x").parts == {
        "responses held (64 prompts x n 8 x 40 tokens)": 64 * 8 * 40 * resources.OUTPUT_TOKEN_BYTES}


def test_the_budget_is_mem_mb_in_a_cluster_job_else_the_machine(monkeypatch, tmp_path):
    from solopo import stage

    monkeypatch.delenv(resources.MEM_MB_VAR, raising=False)
    monkeypatch.delenv(resources.CLUSTER_FLAG, raising=False)
    monkeypatch.chdir(tmp_path)
    assert resources.job_budget()[1] == "the machine's available memory"
    # a cluster job's command hands its mem_mb over: shell() formats {resources.mem_mb} from the run block
    cmd = stage.prepare("pipeline.toy_world", (), {}, stage_src(), deployed=False, own_process=True)
    assert resources.MEM_MB_VAR not in cmd
    monkeypatch.setenv(resources.CLUSTER_FLAG, "1")
    cmd = stage.prepare("pipeline.toy_world", (), {}, stage_src(), deployed=False, own_process=True)
    assert cmd.startswith(f"{resources.MEM_MB_VAR}={{resources.mem_mb}} PYTHONPATH=")
    monkeypatch.setenv(resources.MEM_MB_VAR, "2048")
    assert resources.job_budget() == (2048 * 2**20, "its mem_mb resource, 2048")
    est = resources.Estimate("train results/train/x/model", ("train.optim.max_length",), {"weights": 3 * GIB})
    with pytest.raises(ResourceError, match=r"^train results/train/x/model: predicted memory 3.0 GiB \(weights 3.0 GiB\) "
                                            r"exceeds the 2.0 GiB the job has \(its mem_mb resource, 2048\); lower "
                                            r"train.optim.max_length"):
        resources.check(est)
    resources.check(est, (4 * GIB, "test"))


def test_training_and_evaluation_that_cannot_fit_are_named(tiny_lm_dir):
    o = dict(TINY["train"]["optim"], micro_batch_size=64, max_length=1024)
    rows = [{"id": "q", "x": "p", "y_w": "The answer is: Paris " * 20, "y_l": "no"}]
    est = resources.for_train(tiny_lm_dir, "solo_orpo", o, "none", "results/train/solo_orpo/model", rows)
    assert resources.longest_response_tokens(tiny_lm_dir, rows) > 20
    assert resources.sequences_per_row("solo_orpo") == 3 and resources.sequences_per_row("sft_short") == 1
    with pytest.raises(ResourceError, match="lower train.optim.micro_batch_size, train.optim.max_length"):
        resources.check(est, (est.total - 1, "test"))
    b = dict(TINY["eval"]["ruler"], batch_size=512)
    ev = resources.for_eval("ruler", tiny_lm_dir, b, "hf", "results/eval/base_ruler.json")
    with pytest.raises(ResourceError, match="lower eval.ruler.batch_size, eval.ruler.lengths, eval.ruler.max_new_tokens"):
        resources.check(ev, (ev.total - 1, "test"))
    assert resources.for_eval("leaderboard", tiny_lm_dir, {}, "hf", "x") is None


def test_the_presets_fit_with_margin(tiny_lm_dir, tmp_path):
    """The paper preset on its SLURM memory (slurm/profile.yaml, attempt 1) and the tiny preset on 2 GiB."""
    s = PAPER["sampling"]
    paper = {"sample": (resources.sampling_estimate(QWEN7B, 19938, PAPER["data"]["long_tokens"] + 512, s, "cuda", "s"), 128000),
             "train": (resources.train_estimate(QWEN7B, "solo_orpo", PAPER["train"]["optim"], PAPER["train"]["deepspeed"],
                                                "cuda", "t", PAPER["sampling"]["max_new_tokens"]), 480000)}
    for bench in ("longbench_v1", "ruler", "longbench_v2", "niah_plus"):
        paper[bench] = (resources.eval_estimate(QWEN7B, bench, PAPER["eval"][bench], "cuda", PAPER["eval"]["backend"], "e"),
                        128000)
    for name, (est, mem_mb) in paper.items():
        assert est.total * 2 < mem_mb * 2**20, (name, est.parts)
    # the tiny model's own config (tiny.yaml's tiny_model block)
    tm = TINY["tiny_model"]
    shape = ModelShape(tm["num_layers"], tm["hidden_size"], tm["num_heads"], tm["num_kv_heads"],
                       tm["hidden_size"] // tm["num_heads"], tm["intermediate_size"], tm["vocab_size"], True)
    tiny = [resources.sampling_estimate(shape, 64, TINY["data"]["long_tokens"] + 128, TINY["sampling"], "cpu", "s"),
            resources.train_estimate(shape, "solo_orpo_both", TINY["train"]["optim"], "none", "cpu", "t",
                                     TINY["sampling"]["max_new_tokens"])]
    tiny += [resources.eval_estimate(shape, b, TINY["eval"][b], "cpu", "hf", "e")
             for b in ("longbench_v1", "ruler", "longbench_v2", "niah_plus")]
    for est in tiny:
        assert est.total < 2 * GIB, (est.what, est.parts)


def test_preflight_names_the_planned_job_that_cannot_fit(tiny_lm_dir, tmp_path):
    """Run by the workflow's onstart, before Snakemake removes the old samples of a job it will rerun."""
    from types import SimpleNamespace as NS

    class Res(dict):
        pass

    ctx = _contexts(tmp_path, 4)
    cfg = {"sampling": dict(TINY["sampling"], n=256, batch_size=64), "backbone": {"trust_remote_code": False}}

    def job(mem_mb, rule="sample"):
        return NS(rule=NS(name=rule), params=NS(cfg=cfg), input=NS(contexts=str(ctx)),
                  output=NS(samples="results/samples/tiny/short.jsonl"), wildcards=NS(), resources=Res(mem_mb=mem_mb, gpu=0))

    line = resources.preflight([job(None, "pairs"), job(1)], lambda j: tiny_lm_dir, local=False)
    assert line.startswith("sample results/samples/tiny/short.jsonl: predicted memory ") and "\n" not in line
    assert line.endswith("(its mem_mb resource, 1); lower sampling.n, sampling.batch_size, sampling.max_new_tokens "
                         "(or give the rule more mem_mb)")
    assert resources.preflight([job(10**6)], lambda j: tiny_lm_dir, local=False) is None
    # contexts not built yet (made in this run): nothing to predict from, the job checks itself
    ctx.unlink()
    assert resources.preflight([job(1)], lambda j: tiny_lm_dir, local=False) is None


def test_preflight_reads_training_and_evaluation_jobs(tiny_lm_dir, tmp_path):
    from types import SimpleNamespace as NS

    class Res(dict):
        pass

    data = tmp_path / "solo.jsonl"
    write_jsonl(data, [{"id": "q", "x": "p", "x_long": "p", "y_w": "The answer is: Paris", "y_l": "The answer is: Oslo"}])
    run = {"method": "solo_orpo", "train": {"optim": dict(TINY["train"]["optim"]), "deepspeed": "none"}}
    train = NS(rule=NS(name="train"), params=NS(run=run), input=NS(data=str(data)), output=NS(model="results/train/x/model"),
               wildcards=NS(run="x"), resources=Res(mem_mb=1, gpu=0))
    cfg = {"eval": {"backend": "hf", "ruler": dict(TINY["eval"]["ruler"])}}
    ev = NS(rule=NS(name="evaluate"), params=NS(cfg=cfg), input=NS(), output=NS(json="results/eval/x_ruler.json"),
            wildcards=NS(run="x", bench="ruler"), resources=Res(mem_mb=1, gpu=0))
    line = resources.preflight([train], lambda j: tiny_lm_dir, local=False)
    assert line.startswith("train results/train/x/model: predicted memory ") and "lower train.optim.micro_batch_size" in line
    line = resources.preflight([ev], lambda j: tiny_lm_dir, local=False)
    assert line.startswith("evaluate results/eval/x_ruler.json: predicted memory ") and "lower eval.ruler.batch_size" in line
    assert resources.preflight([train, ev], lambda j: tiny_lm_dir, local=True) is None  # this machine has the memory


def stage_src():
    from pathlib import Path

    return Path(__file__).resolve().parents[1] / "src"
