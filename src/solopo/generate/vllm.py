"""vLLM backend. vLLM is an optional extra (GPU only); it is imported on first use.

Everything up to the engine call (sampling parameters, prompt order, output
reshaping) lives in plain functions tested without vLLM installed.
"""
from __future__ import annotations

from solopo.generate import GenerationConfig


def sampling_kwargs(cfg: GenerationConfig) -> dict:
    """vLLM `SamplingParams` keyword arguments matching the HF backend's semantics."""
    kw = dict(n=cfg.n, max_tokens=cfg.max_new_tokens, seed=cfg.seed)
    if cfg.temperature > 0:
        kw.update(temperature=cfg.temperature, top_p=cfg.top_p)
    else:
        kw.update(temperature=0.0, top_p=1.0)
    return kw


def reshape_outputs(request_outputs) -> list[list[str]]:
    """vLLM returns one RequestOutput per prompt, each with `.outputs[i].text`."""
    return [[o.text for o in ro.outputs] for ro in request_outputs]


class VLLMBackend:
    def __init__(self, model_path: str, trust_remote_code: bool = False, tensor_parallel_size: int = 1,
                 max_model_len: int | None = None, gpu_memory_utilization: float = 0.9,
                 rope_scaling: dict | None = None, **_):
        try:
            import vllm  # noqa: F401
        except ImportError as e:  # pragma: no cover - exercised only where vLLM is missing
            raise RuntimeError(
                "sampling.backend is 'vllm' but vLLM is not installed: `pip install -e .[vllm]` on a GPU machine, "
                "or set sampling.backend/eval.backend to 'hf'"
            ) from e
        from vllm import LLM

        extra = {"hf_overrides": {"rope_scaling": rope_scaling}} if rope_scaling else {}
        self.llm = LLM(model=model_path, trust_remote_code=trust_remote_code, tensor_parallel_size=tensor_parallel_size,
                       max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization, **extra)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, prompts: list[str], cfg: GenerationConfig, progress=None) -> list[list[str]]:
        from vllm import SamplingParams

        outs = self.llm.generate(prompts, SamplingParams(**sampling_kwargs(cfg)), use_tqdm=progress is not None)
        return reshape_outputs(outs)
