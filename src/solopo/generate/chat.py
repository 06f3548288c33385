"""Chat formatting shared by sampling and every benchmark."""
from __future__ import annotations


def format_chat(tokenizer, user: str, assistant_prefix: str = "", system: str | None = None) -> str:
    """The prompt string the model sees: chat template with a generation prompt, then an
    optional assistant prefix (RULER puts its answer prefix inside the assistant turn)."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:  # base models: the raw prompt, as RULER's `base` wrapper does
        text = user
    return text + assistant_prefix
