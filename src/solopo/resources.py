"""Memory predicted before a job starts work, compared with what the job has.

A job whose settings cannot fit (e.g. `sampling.n: 10000`) would otherwise delete the samples it
resumes from, then grow until the kernel kills the whole Snakemake process (lock and partial files
left behind). `check` stops it first, with one line naming the config keys to change.

The model is deliberately simple: a sum of the large buffers, each a count of tokens times bytes
per token for the model's config (`ModelShape`, read from the model folder's config.json):

* weights: parameters x bytes of the dtype the job loads;
* KV cache: 2 (key, value) x layers x kv_heads x head_dim x dtype bytes per token of every
  sequence in flight (HF `generate` runs `batch_size` prompts x `n` return sequences at once);
* logits: vocab x 4 bytes (float32) per sequence per decoding step, twice (scores and probabilities);
* prefill: one layer's activations for every prompt token in flight (3 x hidden + 3 x
  intermediate per token: HF runs the whole prompt batch through each layer at once; attention
  scores are not stored, PyTorch's fused attention works block by block);
* responses held until the samples file is written: prompts x n x max_new_tokens x 8 bytes
  (~4 characters per token, stored once as Python text and once as the JSON line);
* training: weights, gradients and two AdamW moments (4 x dtype bytes per parameter; 16 bytes on
  the host with ZeRO-3 CPU offload), activations of one micro-batch (every layer's 6 x hidden +
  3 x intermediate per token, or only its input with gradient checkpointing) and float32 logits,
  log-softmax and their gradient of the response positions only (3 x vocab x 4 bytes per token;
  solopo.train.forward computes the LM head nowhere else).

Only host memory is checked: on a GPU the KV cache, activations and (without offload) weights
live in device memory, which vLLM and CUDA manage. The budget is the rule's `mem_mb` in a cluster
job (the scheduler enforces it; common.smk sets SOLOPO_MEM_FROM_RESOURCES there), else the
machine's available memory (Snakemake's default `mem_mb` for a local job is no limit).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

# How the job's mem_mb reaches it is the stage runner's business (solopo.stage); re-exported for callers.
from solopo.eval import BENCHES
from solopo.stage import CLUSTER_FLAG, MEM_MB_VAR  # noqa: F401

GIB = 2**30
OUTPUT_TOKEN_BYTES = 8
LOGIT_BYTES = 4
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


class ResourceError(RuntimeError):
    """A job predicted to need more memory than it has; the message names the keys to change."""


@dataclass(frozen=True)
class ModelShape:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool

    @property
    def params(self) -> int:
        attn = 2 * self.hidden * self.heads * self.head_dim + 2 * self.hidden * self.kv_heads * self.head_dim
        embed = self.vocab * self.hidden * (1 if self.tied else 2)
        return embed + self.layers * (attn + 3 * self.hidden * self.intermediate)

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes


def model_shape(model_dir: str | Path) -> ModelShape | None:
    """The shape of a local model folder's config.json (the text model's, for multimodal configs);
    None when there is no local config (nothing to predict from)."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        return None
    try:
        c = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # the model load names the broken file; a prediction has nothing to go on
    c = c.get("text_config") or c
    if not all(k in c for k in ("num_attention_heads", "hidden_size", "num_hidden_layers", "vocab_size")):
        return None  # not a causal LM's config (or a placeholder): nothing to predict from
    heads = int(c["num_attention_heads"])
    hidden = int(c["hidden_size"])
    return ModelShape(layers=int(c["num_hidden_layers"]), hidden=hidden, heads=heads,
                      kv_heads=int(c.get("num_key_value_heads") or heads),
                      head_dim=int(c.get("head_dim") or hidden // heads),
                      intermediate=int(c.get("intermediate_size") or 4 * hidden), vocab=int(c["vocab_size"]),
                      tied=bool(c.get("tie_word_embeddings", False)))


@dataclass
class Estimate:
    what: str  # e.g. "sample results/samples/tiny/short.jsonl"
    keys: tuple[str, ...]  # the config keys that change the prediction
    parts: dict[str, int] = field(default_factory=dict)  # host bytes by buffer (with how they were counted)

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB / 10 else f"{n / 2**20:.0f} MiB"


def _generation_parts(shape: ModelShape, seqs: int, prompt: int, new: int, dtype_bytes: int) -> dict[str, int]:
    """Host buffers of HF `generate` on CPU for `seqs` sequences of `prompt` + `new` tokens."""
    return {
        "weights": shape.params * dtype_bytes,
        f"KV cache ({seqs} sequences x {prompt + new} tokens)": seqs * (prompt + new) * shape.kv_bytes_per_token(dtype_bytes),
        "logits": seqs * shape.vocab * LOGIT_BYTES * 2,
        "prefill": seqs * prompt * (3 * shape.hidden + 3 * shape.intermediate) * dtype_bytes,
    }


def sampling_estimate(shape: ModelShape, prompts: int, prompt_tokens: int, s: dict, device: str, what: str) -> Estimate:
    """Sampling (`sampling.*` config block) of `prompts` prompts of at most `prompt_tokens` tokens."""
    n, new, batch = int(s["n"]), int(s["max_new_tokens"]), int(s.get("batch_size", 8))
    parts = {f"responses held ({prompts} prompts x n {n} x {new} tokens)": prompts * n * new * OUTPUT_TOKEN_BYTES}
    if device == "cpu" and s["backend"] == "hf":
        parts |= _generation_parts(shape, min(batch, prompts) * n, prompt_tokens, new, 4)
    return Estimate(what, ("sampling.n", "sampling.batch_size", "sampling.max_new_tokens"), parts)


def eval_prompt_tokens(bench: str, b: dict) -> int:
    """The longest prompt an evaluation feeds the model, from its config (`eval.<bench>`)."""
    if BENCHES[bench].lengths:
        return max(int(x) for x in b["lengths"])
    return int(b["max_length"])


def eval_estimate(shape: ModelShape, bench: str, b: dict, device: str, backend: str, what: str) -> Estimate:
    """One benchmark's evaluation (`eval.<bench>` block), greedy, `batch_size` prompts of the longest
    configured length at a time (the predictions held are a few MB even for the paper's suites)."""
    new = int(b.get("max_new_tokens") or 0)
    length_key = f"eval.{bench}.{BENCHES[bench].length_key}"
    parts: dict[str, int] = {}
    if device == "cpu" and backend == "hf":
        parts |= _generation_parts(shape, int(b.get("batch_size", 8)), eval_prompt_tokens(bench, b), new, 4)
    return Estimate(what, (f"eval.{bench}.batch_size", length_key, f"eval.{bench}.max_new_tokens"), parts)


def sequences_per_row(method: str) -> int:
    """Sequences one training row puts through the model (chosen, rejected, their long copies)."""
    from solopo.train.losses import get_loss, get_method

    needs = get_loss(get_method(method).loss).needs
    return max(1, sum(f in ("chosen", "rejected", "long_chosen", "long_rejected") for f in needs))


def train_estimate(shape: ModelShape, method: str, o: dict, deepspeed: str, device: str, what: str,
                   response_tokens: int) -> Estimate:
    """Training (`train.optim`, `train.deepspeed`): optimiser state and one micro-batch's activations;
    `response_tokens`: the longest response of the training set (the positions the LM head runs on)."""
    dtype = o.get("dtype", "auto")
    dt = DTYPE_BYTES.get(dtype, 4 if device == "cpu" else 2)
    parts: dict[str, int] = {}
    if deepspeed == "zero3_offload":
        parts["fp32 weights, gradients and AdamW moments offloaded to the host"] = shape.params * 16
    elif device == "cpu":
        parts["weights, gradients and AdamW moments"] = shape.params * 4 * dt
    if device == "cpu":
        seqs = int(o["micro_batch_size"]) * sequences_per_row(method)
        length = int(o["max_length"])
        per_layer = shape.hidden if o.get("gradient_checkpointing") else 6 * shape.hidden + 3 * shape.intermediate
        parts[f"activations ({seqs} sequences x {length} tokens)"] = seqs * length * shape.layers * per_layer * dt
        parts[f"logits of {min(response_tokens, length)} response tokens"] = (
            seqs * min(response_tokens, length) * shape.vocab * LOGIT_BYTES * 3)
    return Estimate(what, ("train.optim.micro_batch_size", "train.optim.max_length", "train.optim.gradient_checkpointing",
                           "train.deepspeed"), parts)


def machine_available_bytes() -> int:
    """MemAvailable of /proc/meminfo (free + reclaimable), else the physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def job_budget() -> tuple[int, str]:
    """(bytes, where that figure comes from) for the running job."""
    # a cluster job's mem_mb, handed over by the command its rule runs (solopo.stage.prepare): a job
    # on a cluster node always runs as its own process; a local run has no such limit
    mem = os.environ.get(MEM_MB_VAR)
    if mem:
        return int(mem) * 2**20, f"its mem_mb resource, {int(mem)}"
    return machine_available_bytes(), "the machine's available memory"


def check(est: Estimate | None, budget: tuple[int, str] | None = None) -> None:
    """Raise ResourceError (one line) when the prediction exceeds the job's memory; called before a
    stage deletes or writes anything."""
    if est is None:
        return
    have, source = budget or job_budget()
    if est.total <= have:
        return
    top = sorted(est.parts.items(), key=lambda kv: -kv[1])[:3]
    detail = ", ".join(f"{name} {_gib(b)}" for name, b in top)
    raise ResourceError(f"{est.what}: predicted memory {_gib(est.total)} ({detail}) exceeds the {_gib(have)} the job has "
                        f"({source}); lower {', '.join(est.keys)} (or give the rule more mem_mb)")


# --------------------------------------------------------------------------- one estimate per stage
def longest_prompt_tokens(model: str, prompts: list[str], trust_remote_code: bool = False) -> int:
    """Tokens of the longest prompt (by characters) once chat-formatted, as the sampler feeds it."""
    from solopo.generate.chat import format_chat
    from solopo.generate.hf import load_tokenizer

    tok = load_tokenizer(model, trust_remote_code)
    longest = max(prompts, key=len, default="")
    return len(tok(format_chat(tok, longest), add_special_tokens=False)["input_ids"])


def device_for(backend: str) -> str:
    """Where a job's model runs: vLLM always on a GPU, everything else where torch finds one."""
    if backend == "vllm":
        return "cuda"
    from solopo.runtime import pick_device

    return pick_device("auto")


def for_sampling(rows: list[dict], model: str, s: dict, out: str, trust_remote_code: bool = False) -> Estimate | None:
    shape = model_shape(model)
    if shape is None or not rows:
        return None
    tokens = longest_prompt_tokens(model, [r["prompt"] for r in rows], trust_remote_code)
    return sampling_estimate(shape, len(rows), tokens, s, device_for(s["backend"]), f"sample {out}")


def for_eval(bench: str, model_dir: str, b: dict, backend: str, out: str) -> Estimate | None:
    shape = model_shape(model_dir)
    if shape is None or BENCHES[bench].loads_model:  # lm-eval batches the leaderboard itself
        return None
    return eval_estimate(shape, bench, b, device_for(backend), backend, f"evaluate {out}")


def longest_response_tokens(model: str, rows: list[dict]) -> int:
    """Tokens of the longest chosen/rejected response (by characters) of a training set."""
    from solopo.generate.hf import load_tokenizer

    texts = [str(r[k]) for r in rows for k in ("y_w", "y_l") if r.get(k)]
    if not texts:
        return 0
    tok = load_tokenizer(model)
    return len(tok(max(texts, key=len), add_special_tokens=False)["input_ids"])


def for_train(model: str, method: str, o: dict, deepspeed: str, out: str, rows: list[dict],
              device: str | None = None) -> Estimate | None:
    shape = model_shape(model)
    if shape is None:
        return None
    return train_estimate(shape, method, o, deepspeed, device or device_for("hf"), f"train {out}",
                          longest_response_tokens(model, rows))


# --------------------------------------------------------------------------- before Snakemake starts jobs
def job_estimate(rule: str, params, inputs, outputs, wildcards, model_dir: str, device: str | None) -> Estimate | None:
    """The estimate of one planned job from what Snakemake knows before running it (its params slice,
    inputs, outputs); None when there is nothing to predict from yet (inputs made in this run)."""
    from solopo.artifacts import read_jsonl

    if rule == "sample":
        ctx, shape = Path(str(inputs.contexts)), model_shape(model_dir)
        if not ctx.is_file() or shape is None:
            return None
        s, rows = params.cfg["sampling"], read_jsonl(ctx)
        tokens = longest_prompt_tokens(model_dir, [r["prompt"] for r in rows],
                                       bool(params.cfg["backbone"].get("trust_remote_code")))
        dev = "cuda" if s["backend"] == "vllm" else (device or device_for("hf"))
        return sampling_estimate(shape, len(rows), tokens, s, dev, f"sample {outputs.samples}")
    if rule == "train":
        run, data = params.run, Path(str(inputs.data))
        if not data.is_file():
            return None
        return for_train(model_dir, run["method"], run["train"]["optim"], run["train"].get("deepspeed", "none"),
                         str(outputs.model), read_jsonl(data), device)
    if rule == "evaluate":
        shape = model_shape(model_dir)
        bench = wildcards.bench
        if shape is None or BENCHES[bench].loads_model:
            return None
        backend = params.cfg["eval"]["backend"]
        return eval_estimate(shape, bench, params.cfg["eval"][bench], device or device_for(backend), backend,
                             f"evaluate {outputs.json}")
    return None


def preflight(jobs, model_dir_of, local: bool) -> str | None:
    """One line for the first planned sample/train/evaluate job predicted not to fit, else None.
    Run from the workflow's `onstart`, before Snakemake removes any old output of those jobs.
    `local`: jobs run on this machine (its available memory), else each job's `mem_mb` on a node."""
    for job in jobs:
        rule = job.rule.name
        if rule not in ("sample", "train", "evaluate"):
            continue
        if local:
            budget, device = (machine_available_bytes(), "the machine's available memory"), None
        else:
            mem = job.resources.get("mem_mb")
            if not mem:
                continue
            budget = (int(mem) * 2**20, f"its mem_mb resource, {int(mem)}")
            device = "cuda" if job.resources.get("gpu") else "cpu"
        est = job_estimate(rule, job.params, job.input, job.output, job.wildcards, model_dir_of(job), device)
        try:
            check(est, budget)
        except ResourceError as e:
            return str(e)
    return None
