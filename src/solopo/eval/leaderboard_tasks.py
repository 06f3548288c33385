"""The Open LLM Leaderboard subsets' lm-eval task names and the local task YAMLs of the fixture source
(solopo.eval.leaderboard describes both sources)."""
from __future__ import annotations

from pathlib import Path

import yaml

SUBSETS = ("mmlu_pro", "ifeval", "bbh", "math", "gpqa")

# Paper preset: lm-eval's installed task / group names.
TASK_GROUPS: dict[str, str] = {
    "mmlu_pro": "leaderboard_mmlu_pro",
    "ifeval": "leaderboard_ifeval",
    "bbh": "leaderboard_bbh",
    "math": "leaderboard_math_hard",
    "gpqa": "leaderboard_gpqa",
}
LOCAL_PREFIX = "local_"
# Fixture preset: the same names with a prefix, so they never clash with the installed tasks.
LOCAL_TASK_GROUPS: dict[str, str] = {k: LOCAL_PREFIX + v for k, v in TASK_GROUPS.items()}

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "leaderboard"


def installed_task_dir() -> Path:
    """The installed lm-eval release's `tasks/leaderboard` folder (the YAMLs the local tasks include)."""
    import lm_eval

    return Path(lm_eval.__file__).parent / "tasks" / "leaderboard"


# --------------------------------------------------------------------------- local task YAMLs

def _dump(path: Path, cfg: dict) -> None:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))


def _group_yaml(installed: Path, name: str, tasks: list[str]) -> dict:
    """The installed group YAML with only its name and task list replaced."""
    cfg = yaml.safe_load(installed.read_text())
    cfg["group"] = name
    cfg["task"] = tasks
    return cfg


def write_local_tasks(fixture_dir: Path | str, out_dir: Path | str) -> list[str]:
    """Write local lm-eval task YAMLs for the fixtures found in ``fixture_dir`` into ``out_dir``.

    Layout read: ``mmlu_pro/{test,validation}.jsonl``, ``ifeval/train.jsonl``,
    ``bbh/<subtask>.jsonl``, ``math/<subtask>.jsonl`` (subtask as in ``math_<subtask>.yaml``),
    ``gpqa/{main,diamond,extended}.jsonl``. Returns the top-level task/group names written (in
    SUBSETS order), i.e. the values of LOCAL_TASK_GROUPS whose fixtures exist.
    """
    fx = Path(fixture_dir).resolve()
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    lb = installed_task_dir()
    names: list[str] = []

    def task_yaml(include: Path, task: str, data_files: dict[str, Path], **splits) -> dict:
        if not include.is_file():
            raise FileNotFoundError(f"installed lm-eval task YAML not found: {include}")
        cfg = {"include": str(include), "task": task, "dataset_path": "json", "dataset_name": None,
               "dataset_kwargs": {"data_files": {k: str(v) for k, v in data_files.items()}}}
        cfg.update(splits)
        return cfg

    # MMLU-Pro: test split + validation split (few-shot source, sampler first_n).
    if (fx / "mmlu_pro" / "test.jsonl").is_file():
        files = {"test": fx / "mmlu_pro" / "test.jsonl"}
        if (fx / "mmlu_pro" / "validation.jsonl").is_file():
            files["validation"] = fx / "mmlu_pro" / "validation.jsonl"
        name = LOCAL_TASK_GROUPS["mmlu_pro"]
        _dump(out / f"{name}.yaml", task_yaml(lb / "mmlu_pro" / "mmlu_pro.yaml", name, files,
                                              test_split="test", fewshot_split="validation"))
        names.append(name)

    # IFEval: the hub dataset's only split is "train".
    if (fx / "ifeval" / "train.jsonl").is_file():
        name = LOCAL_TASK_GROUPS["ifeval"]
        _dump(out / f"{name}.yaml", task_yaml(lb / "ifeval" / "ifeval.yaml", name,
                                              {"train": fx / "ifeval" / "train.jsonl"},
                                              test_split="train"))
        names.append(name)

    def grouped(key: str, task: str, include: str, group: str, split: str, **splits) -> None:
        """One task per fixture file `<key>/<subtask>.jsonl` (`task` and `include` formatted with the
        subtask, its data under `split`) and the group of those tasks."""
        subs = sorted(p.stem for p in (fx / key).glob("*.jsonl")) if (fx / key).is_dir() else []
        if not subs:
            return
        tasks = []
        for s in subs:
            t = f"{LOCAL_PREFIX}{task.format(s)}"
            _dump(out / f"{t}.yaml", task_yaml(lb / include.format(s), t, {split: fx / key / f"{s}.jsonl"}, **splits))
            tasks.append(t)
        name = LOCAL_TASK_GROUPS[key]
        _dump(out / f"{name}.yaml", _group_yaml(lb / group, name, tasks))
        names.append(name)

    # BBH: one task per subtask file (few-shot samples are hard-coded in the installed YAMLs).
    grouped("bbh", "leaderboard_bbh_{}", "bbh_mc/{}.yaml", "bbh_mc/_leaderboard_bbh.yaml", "test", test_split="test")
    # MATH hard: per-type files; process_docs keeps Level 5; Minerva few-shot samples are in utils.
    grouped("math", "leaderboard_math_{}_hard", "math/math_{}.yaml", "math/_leaderboard_math.yaml", "test",
            test_split="test", training_split=None)
    # GPQA: the hub dataset has only "train", used as validation split (test_split null).
    grouped("gpqa", "leaderboard_gpqa_{}", "gpqa/gpqa_{}_zeroshot.yaml", "gpqa/_leaderboard_gpqa.yaml", "train",
            training_split="train", validation_split="train", test_split=None)

    return names
