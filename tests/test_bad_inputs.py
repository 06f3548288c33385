"""Bad inputs: each gives one clear error naming the file or key, or a correct result.

Config-level refusals go through `validate_config` (what the Snakefile runs before any job);
artifact checks run the real pipeline stage on a small tree. docs/bad_inputs.md lists each case.
"""
import contextlib
import copy
import json
import shutil
from pathlib import Path

import pytest

from solopo import pipeline
from solopo.artifacts import DataError, write_jsonl, write_manifest
from solopo.config import ConfigError, validate_config
from solopo.report.provenance import load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = load_config([ROOT / "config/tiny.yaml"], ROOT / "config/config.yaml")


def _cfg(**changes) -> dict:
    cfg = copy.deepcopy(TINY)
    for dotted, value in changes.items():
        node = cfg
        keys = dotted.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return cfg


# --------------------------------------------------------------------------- refused up front (config)
@pytest.mark.parametrize("changes,message", [
    ({"train__lambdas": {"solo_orpo": [float("inf")]}},
     "config error: train.lambdas.solo_orpo[0]: inf is not a finite number; allowed: a finite number"),
    ({"sampling__temperature": float("nan")}, "config error: sampling.temperature: nan is not a finite number"),
    ({"train__lambdas": {"solo_orpo": [1.0, 0.5, 0.5]}},
     "config error: train.lambdas.solo_orpo: 0.5 and 0.5 both give run solo_orpo_lam0.5 (backbone tiny)"),
    ({"train__lambdas": {"solo_orpo": [1.0, 0.1234567, 0.1234568]}},
     "config error: train.lambdas.solo_orpo: 0.1234568 and 0.1234567 both give run solo_orpo_lam0.123457"),
    ({"train__lambdas": {"solo_orpo": [2.0, 2]}}, "config error: train.lambdas.solo_orpo: 2.0 and 2.0 both give run solo_orpo "),
    ({"eval__ruler__num_samples": 0},
     "config error: eval.ruler.num_samples: 0 is not valid; allowed: integer >= 1"),
    ({"eval__longbench_v1__fixture_items": 0}, "config error: eval.longbench_v1.fixture_items: 0 is not valid"),
    ({"eval__ruler__sets": []}, "config error: eval.ruler.sets: [] gives no evaluation items; allowed: a non-empty list"),
    ({"data__long_tokens": 2000},
     "config error: data.long_tokens + sampling.max_new_tokens: 2040 is beyond the tiny backbone's position range "
     "(tiny_model.max_positions 1024); allowed: <= 1024"),
    ({"eval__ruler__lengths": [256, 4096]}, "config error: eval.ruler: inputs need up to 4096 tokens (prompt + generation), "
                                            "more than backbone tiny's context_window 1024"),
    ({"train__optim__max_length": 300},
     "config error: train.optim.max_length: 300 cannot hold a long prompt and its response (data.long_tokens 384 + "
     "sampling.max_new_tokens 40 = 424); allowed: >= 424"),
])
def test_meaningless_settings_are_refused_before_any_job(changes, message):
    with pytest.raises(ConfigError) as e:
        validate_config(_cfg(**changes))
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


def test_yaml_integers_are_accepted_where_floats_are_expected(tiny_lm_dir, tmp_path):
    """`sampling.temperature: 2` used to pass the schema and then fail inside generate."""
    cfg = _cfg(sampling__temperature=2, train__optim__learning_rate=1, train__lambdas={"solo_orpo": [4]})
    validate_config(cfg)
    assert cfg["sampling"]["temperature"] == 2.0 and isinstance(cfg["sampling"]["temperature"], float)
    assert isinstance(cfg["train"]["optim"]["learning_rate"], float) and cfg["train"]["lambdas"]["solo_orpo"] == [4.0]
    cfg["sampling"].update(temperature=2, n=2, max_new_tokens=4, shard_size=2, batch_size=2)  # as if not validated
    rows = [{"id": f"q{i}", "ctx": "short", "prompt": f"question {i}?", "answers": ["a"]} for i in range(2)]
    ctx = tmp_path / "ctx.jsonl"
    write_manifest(ctx, {}, [], None, {"rows": 2})
    write_jsonl(ctx, rows)
    out = tmp_path / "samples.jsonl"
    pipeline.sample(str(ctx), tiny_lm_dir, str(out), cfg, 1, str(tmp_path / "s.log"), {})
    assert [len(json.loads(x)["responses"]) for x in out.read_text().splitlines()] == [2, 2]


# --------------------------------------------------------------------------- refused at run time (model, data)
def test_long_tokens_beyond_a_given_models_position_range(tiny_lm_dir):
    from solopo.validate import check_long_tokens

    check_long_tokens(tiny_lm_dir, 512)
    with pytest.raises(DataError, match=r"data.long_tokens: 2000 is beyond the position range of .* "
                                        r"\(max_position_embeddings 1024, no rope scaling\)"):
        check_long_tokens(tiny_lm_dir, 2000)


def test_a_tokenizer_without_chat_template_is_refused(tiny_lm_dir, tmp_path):
    model = tmp_path / "no_template"
    shutil.copytree(tiny_lm_dir, model)
    tc = model / "tokenizer_config.json"
    tc.write_text(json.dumps({k: v for k, v in json.loads(tc.read_text()).items() if k != "chat_template"}))
    for f in model.glob("chat_template.*"):
        f.unlink()
    ctx = tmp_path / "ctx.jsonl"
    write_jsonl(ctx, [{"id": "q", "ctx": "short", "prompt": "p", "answers": ["a"]}])
    cfg = _cfg(sampling__n=2, sampling__max_new_tokens=2)
    with pytest.raises(DataError, match=f"{model}: the tokenizer has no chat template"):
        pipeline.sample(str(ctx), str(model), str(tmp_path / "s.jsonl"), cfg, 1, str(tmp_path / "s.log"), {})
    assert not (tmp_path / "s.jsonl").exists()


def test_duplicate_question_ids_are_refused(toy_records, tiny_lm_dir, tmp_path):
    train = tmp_path / "musique_train.jsonl"
    recs = toy_records[:3] + [dict(toy_records[4], id=toy_records[1]["id"])]
    write_jsonl(train, recs)
    with pytest.raises(DataError, match=f"{train}: duplicate id '{toy_records[1]['id']}' \\(rows 2 and 4\\)"):
        pipeline.contexts(str(train), tiny_lm_dir, str(tmp_path / "s.jsonl"), str(tmp_path / "l.jsonl"), TINY, 1,
                          str(tmp_path / "c.log"))


# --------------------------------------------------------------------------- artifacts checked before use
def _pairs_inputs(tmp_path, n_ctx=4, n=3):
    # answers that survive normalisation ("a" is an article: every sample was wrong, a zero pair yield)
    ctx = [{"id": f"q{i}", "ctx": "short", "question": "q?", "prompt": "p", "answers": ["Paris"]} for i in range(n_ctx)]
    smp = [{"id": f"q{i}", "ctx": "short", "answers": ["Paris"], "responses": ["The answer is Paris."] * (n - 1) + ["b"]}
           for i in range(n_ctx)]
    paths = {}
    for name, rows, extra, cfg in (("ctx", ctx, {"rows": n_ctx}, {}), ("smp", smp, {"n_inputs": n_ctx}, {"sampling": {"n": n}})):
        for c in ("short", "long"):
            p = tmp_path / f"{name}_{c}.jsonl"
            write_manifest(p, cfg, [], None, extra)
            write_jsonl(p, [dict(r, ctx=c) for r in rows])
            paths[f"{name}_{c}"] = p
    return paths


def _run_pairs(paths, tmp_path):
    pipeline.pairs(str(paths["smp_short"]), str(paths["smp_long"]), str(paths["ctx_short"]), str(paths["ctx_long"]),
                   str(tmp_path / "pairs.jsonl"), str(tmp_path / "stats.json"), TINY, 1, str(tmp_path / "p.log"))


def test_pairs_from_intact_samples(tmp_path):
    _run_pairs(_pairs_inputs(tmp_path), tmp_path)
    assert (tmp_path / "pairs.jsonl").exists() and json.loads((tmp_path / "stats.json").read_text())["short"]["inputs"] == 4


def test_a_cut_samples_file_is_refused(tmp_path):
    """Was: a samples file cut to 20 of 64 lines trained every run on 9 pairs, exit 0."""
    paths = _pairs_inputs(tmp_path)
    p = paths["smp_long"]
    p.write_text("".join(p.read_text().splitlines(keepends=True)[:2]))
    with pytest.raises(DataError, match=f"{p}: 2 sample sets, but its manifest promises 4 \\(n_inputs in {p}.manifest.json\\)"):
        _run_pairs(paths, tmp_path)
    assert not (tmp_path / "pairs.jsonl").exists()


def test_samples_must_cover_every_context_with_n_responses(tmp_path):
    paths = _pairs_inputs(tmp_path)
    c = paths["ctx_short"]
    rows = [json.loads(x) for x in c.read_text().splitlines()] + [{"id": "q9", "ctx": "short", "question": "q?", "prompt": "p", "answers": ["a"]}]
    write_manifest(c, {}, [], None, {"rows": 5})
    write_jsonl(c, rows)
    with pytest.raises(DataError, match=r"smp_short.jsonl: 4 sample sets for 5 contexts in .*ctx_short.jsonl; expected one per context"):
        _run_pairs(paths, tmp_path)
    paths = _pairs_inputs(tmp_path / "b")
    s = paths["smp_short"]
    rows = [json.loads(x) for x in s.read_text().splitlines()]
    rows[2]["responses"] = rows[2]["responses"][:1]
    write_jsonl(s, rows)
    with pytest.raises(DataError, match=r"smp_short.jsonl:3: 1 responses for id 'q2'; expected 3 \(sampling.n, \+ 2 with sampling.reference_traces\)"):
        _run_pairs(paths, tmp_path / "b")


def test_an_empty_longbench_subset_is_refused(toy_records, tmp_path):
    """Was: an empty subset silently left out of the average (12.5 -> 15.0)."""
    from solopo.eval import longbench_v1
    from solopo.validate import check_eval_items

    bcfg = TINY["eval"]["longbench_v1"]
    longbench_v1.build_fixture(toy_records, tmp_path, bcfg, 1)
    check_eval_items("longbench_v1", longbench_v1.load_items(tmp_path, bcfg), tmp_path, bcfg)
    (tmp_path / "qasper.jsonl").write_text("")
    with pytest.raises(DataError, match=f"{tmp_path}/qasper.jsonl: 0 items; expected at least 1"):
        check_eval_items("longbench_v1", longbench_v1.load_items(tmp_path, bcfg), tmp_path, bcfg)
    with pytest.raises(DataError, match=f"{tmp_path}: 0 ruler items; expected at least 1"):
        check_eval_items("ruler", [], tmp_path, TINY["eval"]["ruler"])


def test_an_empty_eval_json_is_named_by_the_report(tmp_path):
    from solopo.report.tables import load_results

    bad = tmp_path / "solo_orpo_ruler.json"
    bad.write_text("")
    with pytest.raises(DataError, match=f"{bad}: not a valid eval JSON"):
        load_results([str(bad)])


def test_manifests_and_predictions_are_declared_outputs(tmp_path):
    """A failed rerun removes them with the artifact (no orphan manifest beside a deleted file)."""
    from tests.snakemake_plan import plan

    jobs = plan(tmp_path, TINY, ("results/eval/base_ruler.json", "results/pairs/tiny/pair_stats.json"))
    outputs = {o for j in jobs.values() for o in j.outputs}
    assert {"results/eval/base_ruler.json.manifest.json", "results/eval/base_ruler.predictions.jsonl",
            "results/eval/base_ruler.predictions.jsonl.manifest.json", "results/samples/tiny/short.jsonl.manifest.json",
            "results/pairs/tiny/pairs.jsonl.manifest.json", "results/data/musique_train.jsonl.manifest.json",
            "results/contexts/tiny/long.jsonl.manifest.json"} <= outputs


def test_report_manifests_are_declared_outputs(tmp_path):
    """Was: a bad eval JSON failed the report job, Snakemake deleted the tables and left their manifests."""
    from solopo.report.tables import report_targets
    from tests.snakemake_plan import plan

    targets = report_targets(TINY)
    assert any(t.endswith(".png") for t in targets) and "results/report/table3.md" in targets
    outputs = {o for j in plan(tmp_path, TINY, tuple(targets)).values() for o in j.outputs}
    assert {f"{t}.manifest.json" for t in targets} <= outputs, sorted({f"{t}.manifest.json" for t in targets} - outputs)


def _read_only(folder: Path) -> contextlib.AbstractContextManager:
    """`folder` made read-only the way the user meets it: a read-only bind mount as root (permissions do not
    stop root), its mode bits otherwise."""
    import os
    import subprocess

    @contextlib.contextmanager
    def ro():
        if os.geteuid() == 0:
            mount = ["mount", "--bind", str(folder), str(folder)]
            if subprocess.run(mount, capture_output=True, check=False).returncode:
                pytest.skip("root without mount rights: no way to make a folder read-only here")
            try:
                subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True, capture_output=True)
                yield
            finally:
                subprocess.run(["umount", str(folder)], check=True)
        else:
            folder.chmod(0o555)
            try:
                yield
            finally:
                folder.chmod(0o755)

    return ro()


def test_a_read_only_results_folder_is_named_before_any_job(tmp_path):
    """Was: a read-only results/eval raised a traceback from inside Snakemake's removal of old outputs.
    The workflow's onstart hook runs this check on every output (and log) of the jobs to run."""
    from solopo.artifacts import unwritable_dir

    ev = tmp_path / "results" / "eval"
    ev.mkdir(parents=True)
    outs = [tmp_path / "results" / "data" / "musique_train.jsonl", ev / "base_ruler.json", ev / "x" / "deep.json"]
    assert unwritable_dir(outs) is None
    with _read_only(ev):
        message = unwritable_dir(outs)
    assert message == (f"{ev}: not writable (a read-only mount or its permissions), and this run writes {outs[1]} there; "
                       "allowed: a writable results folder (remount it read-write, or run in a writable copy of the workflow)")


def test_snakemake_stops_in_one_line_on_a_read_only_results_folder(tmp_path):
    """The workflow's onstart hook: one line and exit 1 before any job (was: a Snakemake-internal traceback)."""
    import subprocess
    import sys

    data = tmp_path / "results" / "data"
    data.mkdir(parents=True)
    cmd = [str(Path(sys.executable).parent / "snakemake"), "results/data/musique_train.jsonl", "--snakefile",
           str(ROOT / "Snakefile"), "--profile", str(ROOT / "profiles" / "local"), "--configfile", str(ROOT / "config/tiny.yaml")]
    with _read_only(data):
        out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.stderr.rstrip().splitlines()[-1] == (
        "results/data: not writable (a read-only mount or its permissions), and this run writes "
        "results/data/musique_train.jsonl there; allowed: a writable results folder (remount it read-write, or "
        "run in a writable copy of the workflow)"), out.stderr[-2000:]
    assert not list(data.iterdir())  # no job ran
    locks = tmp_path / ".snakemake" / "locks"
    assert not locks.exists() or not list(locks.iterdir())  # the lock is released
