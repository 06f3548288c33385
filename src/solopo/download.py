"""Downloads that run on the submitting host (Snakemake `localrule`s, workflow/rules/download.smk).

Compute nodes of a cluster are assumed to have no internet: every job there runs with
HF_HUB_OFFLINE=1 (common.smk) and reads the local copies these functions write under
`resources/`. Each copy is written to a temporary folder and renamed into place only when
complete, with a `manifest.json` naming the source and the exact revision fetched.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from solopo import artifacts
from solopo.runtime import is_offline

# What a causal LM needs to load with from_pretrained (weights, config, tokenizer, generation
# config, remote code); skips the duplicate .bin/.pth/original/ weights some repos ship.
MODEL_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.py", "*.tiktoken", "tokenizer*"]


def _log(log_path: str, msg: str) -> None:
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as fh:
        fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")


def model(repo_id: str, out_dir: str, log_path: str, revision: str | None = None) -> dict:
    """`huggingface_hub.snapshot_download` of one backbone into `out_dir` (a plain folder, no symlinks)."""
    if is_offline():
        raise RuntimeError(f"download {repo_id}: HF_HUB_OFFLINE=1 is set on this host; run the download rules on a "
                           f"host with internet (they are localrules), or put the model folder at {out_dir}")
    import huggingface_hub as hub

    t0 = time.time()
    _log(log_path, f"snapshot_download {repo_id} (revision {revision or 'main'}) -> {out_dir}")
    try:
        info = hub.HfApi().model_info(repo_id, revision=revision)
    except Exception as e:  # noqa: BLE001 -- gated, missing, unreachable: one clear line
        raise RuntimeError(f"download {repo_id}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                           "(gated models need `hf auth login` on this host)") from None
    with artifacts.atomic_path(out_dir) as tmp:
        hub.snapshot_download(repo_id, revision=info.sha, local_dir=str(tmp), allow_patterns=MODEL_PATTERNS)
        shutil.rmtree(Path(tmp) / ".cache", ignore_errors=True)  # huggingface_hub's download bookkeeping
        if not any(Path(tmp).glob("*.safetensors")):
            raise RuntimeError(f"download {repo_id}: no *.safetensors weights in the snapshot")
        # with the sha256 of every file: loaders and `solopo check --inputs` verify the weights
        m = artifacts.write_folder_manifest(tmp, out_dir, {"repo_id": repo_id, "revision": info.sha}, [], t0,
                                            {"source": f"https://huggingface.co/{repo_id}", "sha": info.sha})
    _log(log_path, f"done in {time.time() - t0:.0f} s (revision {info.sha})")
    return m


def ruler_sources(out_dir: str, cfg: dict, log_path: str) -> dict:
    """The three RULER QA source files (SQuAD v2 dev, HotpotQA dev, MuSiQue dev) into `out_dir`."""
    from solopo.eval import ruler

    t0 = time.time()
    _log(log_path, f"ruler sources -> {out_dir}")
    with artifacts.atomic_path(out_dir) as tmp:
        paths = ruler.download(tmp, cfg)  # validates every file (a truncated download fails here)
        m = artifacts.build_manifest(out_dir, {"ruler_sources": sorted(ruler.SOURCE_URLS)}, [], t0,
                                     {"files": {k: artifacts.hash_path(str(p)) for k, p in paths.items()}})
        Path(tmp, "manifest.json").write_text(json.dumps(m, indent=2))
    _log(log_path, f"done in {time.time() - t0:.0f} s")
    return m


def leaderboard(cfg: dict, out_json: str, nltk_dir: str, log_path: str) -> dict:
    """Open LLM Leaderboard subsets (source: hub): lm-eval builds each task once here, which fills the
    Hugging Face datasets cache (HF_HOME, shared with the compute nodes), and nltk's punkt_tab (IFEval)
    goes to `nltk_dir`. Jobs on compute nodes then run lm-eval with HF_DATASETS_OFFLINE=1 on that cache."""
    if is_offline():
        raise RuntimeError("download leaderboard: HF_HUB_OFFLINE=1 is set on this host; run the download rules "
                           "on a host with internet (they are localrules)")
    from solopo.eval.leaderboard import TASK_GROUPS
    from solopo.software import require

    require("lm_eval")
    from lm_eval.tasks import TaskManager, get_task_dict

    t0 = time.time()
    names = [TASK_GROUPS[s] for s in cfg["tasks"]]
    _log(log_path, f"lm-eval tasks {names} -> HF datasets cache")
    try:
        get_task_dict(names, TaskManager())
    except Exception as e:  # noqa: BLE001 -- gated (GPQA), unreachable, ...: one clear line
        raise RuntimeError(f"download leaderboard {names}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                           "(GPQA is gated: accept its terms on the hub and `hf auth login` on this host)") from None
    if "ifeval" in cfg["tasks"]:
        import nltk

        if not nltk.download("punkt_tab", download_dir=nltk_dir, quiet=True, raise_on_error=False):
            raise RuntimeError(f"download leaderboard: nltk punkt_tab could not be fetched into {nltk_dir}")
    m = artifacts.build_manifest(out_json, {"tasks": names}, [], t0, {"nltk_data": nltk_dir})
    artifacts.write_json(out_json, m)
    _log(log_path, f"done in {time.time() - t0:.0f} s")
    return m
