"""HF `generate` backend (CPU/GPU). Deterministic per (seed, batch index)."""
from __future__ import annotations

import logging
from pathlib import Path

from solopo.generate import GenerationConfig, check_window, decoding_params, encode_prompts
from solopo.runtime import MODEL_LOAD_LOCK, STOP, TORCH_RNG_LOCK, check_stop, pick_device

log = logging.getLogger(__name__)


def load_model_and_tokenizer(model_path: str, device: str = "auto", dtype: str = "auto",
                             trust_remote_code: bool = False, rope_scaling: dict | None = None):
    """Load a causal LM safely: safetensors only, no remote code unless asked for."""
    device = pick_device(device)
    # transformers is imported inside the lock too: two threads doing their first
    # `from transformers import AutoConfig` at once get an ImportError (partially initialised module)
    with MODEL_LOAD_LOCK:
        return _load(model_path, device, dtype, trust_remote_code, rope_scaling)


def _load(model_path, device, dtype, trust_remote_code, rope_scaling):
    from solopo.artifacts import DataError, check_model_folder

    check_model_folder(model_path)  # a damaged weights file is named here, not deep inside safetensors
    try:
        return _load_checked(model_path, device, dtype, trust_remote_code, rope_scaling)
    except (OSError, ValueError, RuntimeError) as e:
        if isinstance(e, DataError) or not Path(str(model_path)).is_dir():
            raise
        raise DataError(f"{model_path}: cannot load the model ({type(e).__name__}: {str(e).splitlines()[0][:300]})") from e


def _load_checked(model_path, device, dtype, trust_remote_code, rope_scaling):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch_dtype = {"auto": (torch.bfloat16 if device.startswith("cuda") else torch.float32),
                   "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    tok = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    if rope_scaling:
        # transformers 5 keeps rope settings in `rope_parameters`; replacing `rope_scaling` on a
        # loaded config drops rope_theta. Merge instead (YaRN for LongBench v2, spec §5).
        rs = dict(rope_scaling)
        kind = rs.pop("type", rs.pop("rope_type", None))
        config.rope_parameters = {**(getattr(config, "rope_parameters", None) or {}), **rs, "rope_type": kind}
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
            self.model, self.tokenizer = load_model_and_tokenizer(model_path, device, dtype, trust_remote_code, rope_scaling)
        self.device = next(self.model.parameters()).device
        self.max_model_len = max_model_len

    def generate(self, prompts: list[str], cfg: GenerationConfig, progress=None) -> list[list[str]]:
        import torch

        from transformers import GenerationConfig as HFGenerationConfig

        tok = self.tokenizer
        tok.padding_side = "left"
        gen_cfg = hf_generation_config(cfg, tok)
        outputs: list[list[str]] = []
        for b, start in enumerate(range(0, len(prompts), cfg.batch_size)):
            ids = encode_prompts(tok, prompts[start : start + cfg.batch_size])
            check_window(ids, cfg.max_new_tokens, self.max_model_len)
            enc = tok.pad({"input_ids": ids}, return_tensors="pt").to(self.device)
            check_stop()
            with TORCH_RNG_LOCK, torch.no_grad():
                torch.manual_seed(cfg.seed * 1_000_003 + b)
                # transformers fills every unset field from model.generation_config (the checkpoint's
                # generation_config.json): swap in the library defaults while generating
                saved, self.model.generation_config = self.model.generation_config, HFGenerationConfig()
                try:
                    out = self.model.generate(**enc, generation_config=gen_cfg, stopping_criteria=_stop_criteria())
                finally:
                    self.model.generation_config = saved
            check_stop()  # generate ended early on Ctrl-C: never return a cut output
            new = out[:, enc["input_ids"].shape[1]:]
            texts = tok.batch_decode(new, skip_special_tokens=True)
            for i in range(len(ids)):
                outputs.append(texts[i * cfg.n : (i + 1) * cfg.n])
            if progress is not None:
                progress.update(len(ids))
        return outputs


def _stop_criteria():
    """Stop generating at the next token once Ctrl-C was pressed (solopo.runtime.STOP)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), STOP.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_Stop()])
