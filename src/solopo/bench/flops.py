"""The efficiency benchmark's cost models: the paper's attention-only ratio (Eq. 11-12) and a
linear + attention FLOP model of one training step (`FLOP_MODEL`)."""
from __future__ import annotations

FLOP_MODEL = ("per sequence of n tokens, F(n) = 3 * (2*P*n + layers*4*d*n^2) (forward + backward = 3 x forward; "
              "2*P*n for the weight matmuls, P = non-embedding parameters + the LM head; layers*4*d*n^2 for QK^T and AV "
              "with a full n x n score matrix); vanilla = 2*F(L+R); SoLo = 2*F(S+R) + F(L+R); "
              "ratio_pred_linear_attention = SoLo / vanilla. Attention only (paper Eq. 11-12): "
              "ratio_pred_attention_only = (2*c^2 + 1) / 2, speedup = 2 / (2*c^2 + 1), c = S / L.")


def ratio_attention_only(c: float) -> float:
    """SoLo / vanilla attention cost (paper Eq. 11): (2c^2 + 1) L^2 / (2 L^2), c = |x_short| / |x_long|."""
    return (2 * c * c + 1) / 2


def speedup_attention_only(c: float) -> float:
    """Paper Eq. 12: vanilla / SoLo = 2 / (2c^2 + 1); c = 1/8 gives 1.94x, no gain from c = 1/sqrt(2) on."""
    return 2 / (2 * c * c + 1)


def step_flops(n: int, params: int, layers: int, hidden: int) -> float:
    """Forward + backward FLOPs of one sequence of n tokens: 3 * (2 P n + layers * 4 d n^2)."""
    return 3.0 * (2.0 * params * n + layers * 4.0 * hidden * n * n)


def ratio_linear_attention(short_len: int, long_len: int, response_len: int, params: int, layers: int,
                           hidden: int) -> float:
    """SoLo / vanilla step FLOPs: (2 F(S+R) + F(L+R)) / (2 F(L+R))."""
    f_short = step_flops(short_len + response_len, params, layers, hidden)
    f_long = step_flops(long_len + response_len, params, layers, hidden)
    return (2 * f_short + f_long) / (2 * f_long)


def token_ratio(short_len: int, long_len: int, response_len: int) -> float:
    """SoLo / vanilla tokens held at the peak of a step, (2(S+R) + (L+R)) / (2(L+R)): SoLo keeps the short
    pair's graph through the long backward, so with O(n)-memory attention its memory tends to half of
    vanilla's only as L grows; also how GEMM time scales."""
    S, L, R = short_len, long_len, response_len
    return (2 * (S + R) + (L + R)) / (2 * (L + R))


def attention_ratio(short_len: int, long_len: int, response_len: int) -> float:
    """SoLo / vanilla n^2 attention work with the response counted: (2(S+R)^2 + (L+R)^2) / (2(L+R)^2)."""
    S, L, R = short_len, long_len, response_len
    return (2 * (S + R) ** 2 + (L + R) ** 2) / (2 * (L + R) ** 2)


def flop_params(model) -> int:
    """P of the FLOP model: the parameters that multiply every token, i.e. all but the input embedding,
    plus the LM head (counted even when tied to the embedding)."""
    cfg = model.config
    seen, total = set(), 0
    for name, p in model.named_parameters():  # named_parameters skips tied duplicates
        if id(p) in seen or "embed_tokens" in name:
            continue
        seen.add(id(p))
        total += p.numel()
    if getattr(cfg, "tie_word_embeddings", False):
        total += cfg.vocab_size * cfg.hidden_size
    return int(total)
