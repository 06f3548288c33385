"""One training step of the efficiency benchmarks, SoLo or vanilla, on a random Qwen2 of a given shape.

Used by both `solopo.bench.efficiency` (small models, CPU or GPU) and the GPU check's sweep
(`solopo.bench.gpu_efficiency`, real sizes); needs only torch and transformers. A step is forward(s)
+ loss + backward, no optimizer update, staged exactly as the trainer stages it
(`solopo.train.forward.policy_outputs`): the PO-prompt pair in one forward, the long copies in another.
"""
from __future__ import annotations

from solopo.mappings import deep_merge

METHODS = ("vanilla", "solo")

# the CPU benchmark's reference architecture (a small Qwen2, random init); `tie`: tied input embedding and LM head
MODEL_DEFAULTS: dict = {"hidden_size": 256, "num_layers": 4, "num_heads": 4, "num_kv_heads": 2,
                        "intermediate_size": 704, "vocab_size": 2000}


def resolve_runtime(device: str = "auto", dtype: str = "auto", attn: str = "auto") -> tuple[str, str, str]:
    """(device, dtype name, attention implementation): CPU float32 + sdpa; GPU bfloat16 +
    flash_attention_2 when the flash-attn package is installed, else sdpa."""
    import importlib.util

    from solopo.runtime import pick_device

    device = pick_device(device)
    gpu = device.startswith("cuda")
    if dtype == "auto":
        dtype = "bfloat16" if gpu else "float32"
    if attn == "auto":
        attn = "flash_attention_2" if gpu and importlib.util.find_spec("flash_attn") is not None else "sdpa"
    return device, dtype, attn


def build_model(shape: dict, max_positions: int, device: str = "cpu", dtype: str = "float32",
                attn_implementation: str = "sdpa", seed: int = 0):
    """A randomly initialised Qwen2ForCausalLM of `shape` (`MODEL_DEFAULTS` for what it leaves out; `tie`
    defaults to true), built on `device` in `dtype` directly (a 7B model never exists in fp32 or on the
    CPU), in train mode (Qwen2 has no dropout)."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from solopo.runtime import MODEL_LOAD_LOCK, TORCH_RNG_LOCK

    m = deep_merge(MODEL_DEFAULTS, shape)
    cfg = Qwen2Config(vocab_size=m["vocab_size"], hidden_size=m["hidden_size"],
                      intermediate_size=m["intermediate_size"], num_hidden_layers=m["num_layers"],
                      num_attention_heads=m["num_heads"], num_key_value_heads=m["num_kv_heads"],
                      max_position_embeddings=int(max_positions), tie_word_embeddings=m.get("tie", True),
                      attn_implementation=attn_implementation, use_cache=False)
    with MODEL_LOAD_LOCK, TORCH_RNG_LOCK, torch.device(device):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, dtype))
    model.train()
    return model


class Step:
    """One training step of `loss_name` (forward(s) + loss + backward) on random token ids.

    For a vanilla loss the PO prompt is x_long (long-context PO); for a SoLo loss it is x_short."""

    def __init__(self, model, loss_name: str, long_len: int, short_len: int, response_len: int, seed: int = 0,
                 loss_cfg=None):
        import torch

        from solopo.train.forward import collate
        from solopo.train.losses import LossConfig, get_loss

        self.model = model
        self.spec = get_loss(loss_name)
        self.loss_cfg = loss_cfg or LossConfig()
        device = next(model.parameters()).device
        vocab = model.config.vocab_size
        g = torch.Generator().manual_seed(seed)

        def rand(n):
            return torch.randint(0, vocab, (n,), generator=g).tolist()

        x_long, x_short, y_w, y_l = rand(long_len), rand(short_len), rand(response_len), rand(response_len)
        x_po = x_long if self.spec.variant == "vanilla" else x_short
        fields = {"chosen": (x_po, y_w), "rejected": (x_po, y_l), "long_chosen": (x_long, y_w),
                  "long_rejected": (x_long, y_l)}
        needs = self.spec.needs
        self.stages = []
        for stage in (("chosen", "rejected"), ("long_chosen", "long_rejected")):
            names = [n for n in stage if n in needs]
            if names:
                seqs = [(fields[n][0] + fields[n][1], response_len) for n in names]
                self.stages.append((names, collate(seqs, 0, device)))
        self.shapes = [tuple(b["input_ids"].shape) for _, b in self.stages]

    def __call__(self) -> float:
        from solopo.train.forward import sequence_logps
        from solopo.train.losses import PolicyOutputs, SeqLogps

        out = PolicyOutputs()
        for names, batch in self.stages:
            sums, counts, _ = sequence_logps(self.model, batch)
            for k, name in enumerate(names):
                setattr(out, name, SeqLogps(sums[k:k + 1], counts[k:k + 1]))
        loss, _ = self.spec.fn(out, self.loss_cfg)
        loss.backward()
        return float(loss.detach())


def prepare_step(model, loss_name: str, long_len: int, short_len: int, response_len: int, seed: int = 0) -> Step:
    return Step(model, loss_name, long_len, short_len, response_len, seed)


def sync(device: str) -> None:
    """Wait for the GPU's queued work (a no-op on the CPU), so a timer reads the step's real end."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def count_forwards(model):
    """([calls], hook handle): counts the model's forward calls until the handle is removed."""
    calls = [0]
    handle = model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls, handle


def is_oom(e: BaseException) -> bool:
    """Whether `e` is running out of memory: CUDA's OutOfMemoryError (a RuntimeError), the CPU allocator's, or
    the address-space guard's MemoryError."""
    msg = str(e).lower()
    return isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and (
        "out of memory" in msg or "can't allocate memory" in msg or "cannot allocate memory" in msg))
