import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
# slurm/profile.yaml deploys every job's conda env (software-deployment-method: conda); these machines
# and CI have no conda, so the tests that run the profile (dry runs, the local SLURM, README commands)
# switch deployment off through the profile's own switch. tests/test_envs.py checks the shipped default.
os.environ["SOLOPO_SDM"] = "none"

# `make test` runs the suite on both cores with pytest-xdist (`-n 2`). The scheduler below makes
# each test file one work unit, so a module-scoped fixture (a SLURM cluster, a DeepSpeed run, a
# trained model) is built once, and puts the files that share the session-scoped `reduced_tree` in
# one unit, so the reduced pipeline runs once. (xdist's own `--dist loadgroup` cannot do this under
# pytest 9: it renames `item._nodeid`, which pytest 9 no longer reads.) Units start heaviest first
# (seconds measured on the loaded 2-core machine, below) so the two workers end together; unlisted
# files are short and follow in collection order.
REDUCED_TREE_FILES = ("tests/test_determinism.py", "tests/test_readme_commands.py")
HEAVY_FIRST = {  # work unit -> seconds (`--durations`, two workers, 2026-12-03)
    "tests/test_slurm.py": 398, "tests/test_pipeline_e2e.py": 345, "tests/train/test_multiprocess.py": 176,
    "reduced_tree": 152, "tests/test_envs.py": 101, "tests/test_interruptions.py": 91, "tests/test_sweep.py": 61,
    "tests/test_staleness.py": 57, "tests/bench/test_gpu_check.py": 55, "tests/data/test_musique.py": 49,
    "tests/report/test_toy_science.py": 42, "tests/bench/test_efficiency.py": 26, "tests/test_paper_rehearsal.py": 24,
}


def work_unit(nodeid: str) -> str:
    path = nodeid.split("::")[0]
    return "reduced_tree" if path in REDUCED_TREE_FILES else path


@pytest.hookimpl(optionalhook=True)  # the second test venv (tests/test_envs.py) has no xdist
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class FileUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # keep the heaviest-first collection order below
    return FileUnits(config, log)


def pytest_collection_modifyitems(config, items):
    strays = sorted({it.nodeid.split("::")[0] for it in items if "reduced_tree" in getattr(it, "fixturenames", ())}
                    - set(REDUCED_TREE_FILES))
    if strays:  # else two workers would each build the reduced pipeline
        raise pytest.UsageError(f"tests/conftest.py: add {', '.join(strays)} to REDUCED_TREE_FILES (it uses reduced_tree)")
    order = {unit: rank for rank, unit in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda it: order.get(work_unit(it.nodeid), len(order)))  # stable: collection order otherwise


SIZES = {"person": 30, "city": 12, "country": 6, "leader": 6, "spouse": 6}


@pytest.fixture(scope="session")
def toy_records():
    from solopo.data.toy_world import generate_records

    return generate_records(12, 3, {2: 0.7, 3: 0.3}, SIZES)


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory, toy_records):
    """A random tiny Qwen2 + BPE tokenizer (ChatML) saved as an HF folder."""
    from solopo.data.prompts import QA_COT_TEMPLATE
    from solopo.tiny_model import build_model, build_tokenizer

    corpus = [QA_COT_TEMPLATE] * 5 + [r["cot"] for r in toy_records] + [p["paragraph_text"] for r in toy_records for p in r["paragraphs"]]
    tok = build_tokenizer(corpus, 400)
    model = build_model(tok, 32, 2, 2, 1, 64, 1024, seed=0)
    out = tmp_path_factory.mktemp("tiny_lm")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def reduced_tree(tmp_path_factory):
    """The reduced tiny pipeline (tests/reduced_pipeline.py) run to the end once per session: a folder
    with results/, logs/ and .snakemake/. Shared and read-only: copy what you change."""
    from tests.reduced_pipeline import run_reduced

    tree = tmp_path_factory.mktemp("reduced_tree")
    out = run_reduced(tree, "all")
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return tree


