"""HF `generate` backend (CPU/GPU). Deterministic per (seed, batch index)."""
from __future__ import annotations

import logging
from pathlib import Path

from solopo.generate.decoding import GenerationConfig, check_window, decoding_params, encode_prompts
from solopo.generate.long_context import model_rope_overrides
from solopo.runtime import MODEL_LOAD_LOCK, STOP, TORCH_RNG_LOCK, check_stop, pick_device

log = logging.getLogger(__name__)


def load_model_and_tokenizer(model_path: str, device: str = "auto", dtype: str = "auto",
                             trust_remote_code: bool = False, rope_scaling: dict | None = None,
                             window: int | None = None):
    """Load a causal LM safely: safetensors only, no remote code unless asked for. `rope_scaling`:
    the backbone's long-context setting (config.yaml form), `window` the context window asked for."""
    device = pick_device(device)
    # transformers is imported inside the lock too: two threads doing their first
    # `from transformers import AutoConfig` at once get an ImportError (partially initialised module)
    with MODEL_LOAD_LOCK:
        return _load(model_path, device, dtype, trust_remote_code, rope_scaling, window)


def load_tokenizer(model_path: str, trust_remote_code: bool = False):
    """The tokenizer alone (no weights); no remote code unless asked for."""
    with MODEL_LOAD_LOCK:  # a first transformers import in two threads at once raises ImportError
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)


def _load(model_path, device, dtype, trust_remote_code, rope_scaling, window=None):
    from solopo.artifacts import DataError, check_model_folder

    check_model_folder(model_path)  # a damaged weights file is named here, not deep inside safetensors
    # the long-context setting is checked before loading: its errors name config.json / config.yaml
    overrides = model_rope_overrides(model_path, rope_scaling, window)
    try:
        return _load_checked(model_path, device, dtype, trust_remote_code, overrides)
    except (OSError, ValueError, RuntimeError) as e:
        if isinstance(e, DataError) or not Path(str(model_path)).is_dir():
            raise
        raise DataError(f"{model_path}: cannot load the model ({type(e).__name__}: {str(e).splitlines()[0][:300]})") from e


def _load_checked(model_path, device, dtype, trust_remote_code, overrides):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch_dtype = {"auto": (torch.bfloat16 if device.startswith("cuda") else torch.float32),
                   "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    tok = load_tokenizer(model_path, trust_remote_code)
    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    for key, value in overrides.items():
        # the same attributes vLLM's hf_overrides set (config.update); rope_theta is in rope_parameters
        setattr(config, key, value)
    model = AutoModelForCausalLM.from_pretrained(
        model_path, config=config, dtype=torch_dtype, use_safetensors=True, trust_remote_code=trust_remote_code
    ).to(device)
    model.eval()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok


def hf_generation_config(cfg: GenerationConfig, tok):
    """A transformers GenerationConfig holding `decoding_params` and nothing else."""
    from transformers import GenerationConfig as HFGenerationConfig

    p = decoding_params(cfg)
    greedy = p["temperature"] == 0.0
    return HFGenerationConfig(
        max_new_tokens=p["max_new_tokens"], num_return_sequences=p["n"], do_sample=not greedy,
        temperature=None if greedy else p["temperature"], top_p=None if greedy else p["top_p"],
        top_k=None if greedy else p["top_k"], min_p=None if greedy else p["min_p"],
        repetition_penalty=p["repetition_penalty"], num_beams=1, no_repeat_ngram_size=0,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)


class HFBackend:
    def __init__(self, model_path: str, device: str = "auto", dtype: str = "auto",
                 trust_remote_code: bool = False, rope_scaling: dict | None = None, model=None, tokenizer=None,
                 max_model_len: int | None = None):
        if model is not None:
            self.model, self.tokenizer = model, tokenizer
        else:
            self.model, self.tokenizer = load_model_and_tokenizer(model_path, device, dtype, trust_remote_code,
                                                                  rope_scaling, max_model_len)
        self.device = next(self.model.parameters()).device
        self.max_model_len = max_model_len

    def generate(self, prompts: list[str], cfg: GenerationConfig, progress=None) -> list[list[str]]:
        import torch
        from transformers import GenerationConfig as HFGenerationConfig

        tok = self.tokenizer
        tok.padding_side = "left"
        gen_cfg = hf_generation_config(cfg, tok)
        outputs: list[list[str]] = []
        heads = getattr(self.model.config, "num_attention_heads", 1)
        for b, start in enumerate(range(0, len(prompts), cfg.batch_size)):
            batch_ids = encode_prompts(tok, prompts[start : start + cfg.batch_size])
            check_window(batch_ids, cfg.max_new_tokens, self.max_model_len)
            texts: list[str] = []
            for g, group in enumerate(padded_groups([len(x) for x in batch_ids], heads, self.device.type)):
                enc = tok.pad({"input_ids": [batch_ids[i] for i in group]}, return_tensors="pt").to(self.device)
                check_stop()
                with TORCH_RNG_LOCK, torch.no_grad():
                    # a batch split on a CPU (padded_groups): each further call its own stream
                    torch.manual_seed(cfg.seed * 1_000_003 + b if g == 0 else (cfg.seed * 1_000_003 + b) * 7_919 + g)
                    # transformers fills every unset field from model.generation_config (the checkpoint's
                    # generation_config.json): swap in the library defaults while generating
                    saved, self.model.generation_config = self.model.generation_config, HFGenerationConfig()
                    try:
                        out = self.model.generate(**enc, generation_config=gen_cfg, stopping_criteria=_stop_criteria())
                    finally:
                        self.model.generation_config = saved
                check_stop()  # generate ended early on Ctrl-C: never return a cut output
                texts += tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            for i in range(len(batch_ids)):
                outputs.append(texts[i * cfg.n : (i + 1) * cfg.n])
            if progress is not None:
                progress.update(len(batch_ids))
        return outputs


# A padded batch's attention mask keeps torch's CPU attention off its fused kernel: the math path holds
# batch x heads x length^2 float32 weights per layer (RULER's 32K prompts at batch 8: 29 GB, the paper
# rehearsal's first RULER job died so). CUDA's memory-efficient kernel takes the mask without them.
CPU_PADDED_ATTENTION_BYTES = 2 * 1024**3


def padded_groups(lengths: list[int], heads: int, device_type: str,
                  budget: int = CPU_PADDED_ATTENTION_BYTES) -> list[list[int]]:
    """The prompts of one batch (by index, in order) as generate calls: all together, or on a CPU where the
    padded batch's attention weights (batch x heads x longest^2 x 4 bytes) exceed `budget`, one prompt per
    call (no padding, no mask: the fused kernel). Greedy outputs do not depend on the split."""
    padded = len(lengths) * heads * max(lengths, default=0) ** 2 * 4
    if device_type == "cuda" or len(lengths) <= 1 or padded <= budget:
        return [list(range(len(lengths)))]
    return [[i] for i in range(len(lengths))]


def _stop_criteria():
    """Stop generating at the next token once Ctrl-C was pressed (solopo.runtime.STOP)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), STOP.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_Stop()])
