"""`solopo provenance` and `solopo check` on a small hand-made artifact tree.

The manifests are written with the same config slices as `solopo.pipeline` (data, datasets,
train, evaluate), so `check` must find them up to date under the config that made them, and
flag exactly the artifact whose slice a config edit changes.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from solopo import artifacts, slices
from solopo.cli import main
from solopo.config import run_table, validate_config
from solopo.report.provenance import load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "config" / "tiny.yaml")


@pytest.fixture()
def tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").symlink_to(ROOT / "config")  # a workflow directory: `solopo check` reads config/config.yaml
    cfg = load_config([TINY])
    validate_config(cfg)  # as the workflow does: YAML integers become floats where the schema says number
    seed = cfg["seed"]
    res = Path("results")
    data = res / "data" / "musique_train.jsonl"
    runs = run_table(cfg)
    artifacts.write_manifest(data, slices.toy_world(cfg), [], 0.0)
    artifacts.write_jsonl(data, [{"id": "q1"}])
    ds = res / "datasets" / "tiny" / "solo.jsonl"
    artifacts.write_manifest(ds, slices.datasets(cfg, "tiny"), [str(data)])
    artifacts.write_jsonl(ds, [{"id": "q1", "chosen": "a"}])
    model = res / "train" / "solo_orpo" / "model"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "manifest.json").write_text(json.dumps(artifacts.build_manifest(
        str(model), slices.train(cfg, runs["solo_orpo"]), [str(ds)], 0.0)))
    for run in ("solo_orpo", "solo_orpo_lam0.5"):
        ev = res / "eval" / f"{run}_ruler.json"
        artifacts.write_manifest(ev, slices.evaluate(cfg, runs["solo_orpo"], "ruler"), [str(model)], 0.0)
        artifacts.write_json(ev, {"benchmark": "ruler", "run": run, "score": 1.0})
    other = res / "extra" / "notes.json"  # not written by a pipeline rule: compared by keys
    artifacts.write_manifest(other, {"seed": seed}, [])
    artifacts.write_json(other, {})
    return tmp_path


def _run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_provenance_prints_the_chain_recursively(tree, capsys):
    rc, out = _run(capsys, "provenance", "results/eval/solo_orpo_ruler.json")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "results/eval/solo_orpo_ruler.json"
    order = [i for i, ln in enumerate(lines) for p in ("results/train/solo_orpo/model", "results/datasets/tiny/solo.jsonl",
                                                          "results/data/musique_train.jsonl") if ln.strip().startswith(p)]
    assert len(order) == 3 and order == sorted(order)
    assert "config_hash" in out and "git_commit" in out and "wall_time" in out and "versions: python" in out
    assert "(slice: backbone, lambda, method, seed, train)" in out
    assert "unchanged]" in out and "CHANGED" not in out
    # a manifest path works as well; --json gives the same tree
    rc, js = _run(capsys, "provenance", "results/train/solo_orpo/model/manifest.json", "--json")
    tree_ = json.loads(js)
    assert tree_["path"] == "results/train/solo_orpo/model"
    assert tree_["inputs"][0]["path"] == "results/datasets/tiny/solo.jsonl"
    assert tree_["inputs"][0]["inputs"][0]["path"] == "results/data/musique_train.jsonl"


def test_provenance_flags_an_input_changed_since(tree, capsys):
    Path("results/datasets/tiny/solo.jsonl").write_text('{"id": "q2"}\n')
    rc, out = _run(capsys, "provenance", "results/train/solo_orpo/model")
    assert "results/datasets/tiny/solo.jsonl" in out and "CHANGED since" in out
    rc, out = _run(capsys, "provenance", "results/nothing.json")
    assert rc == 2 and "no manifest" in out


def test_check_is_clean_under_the_config_that_made_the_tree(tree, capsys):
    rc, out = _run(capsys, "check", "--configfile", TINY, "-v")
    assert rc == 0, out
    assert "OK             results/train/solo_orpo/model  [train]" in out
    assert "OK             results/eval/solo_orpo_ruler.json  [evaluate]" in out
    assert "OK             results/extra/notes.json  [by keys]" in out
    # lambda 0.5 is not in the config: an orphan, kept, not an error
    assert "ORPHAN         results/eval/solo_orpo_lam0.5_ruler.json" in out and "the file is kept" in out


def test_check_flags_exactly_the_artifact_whose_slice_changed(tree, capsys):
    Path("lam.yaml").write_text("train: {lambdas: {solo_orpo: [2.0, 0.5]}}\n")
    rc, out = _run(capsys, "check", "--configfile", TINY, "lam.yaml", "--json")
    findings = {f["path"]: f for f in json.loads(out)}
    assert rc == 1
    stale = {p for p, f in findings.items() if f["status"] == "stale"}
    assert stale == {"results/train/solo_orpo/model"}
    assert "lambda" in findings["results/train/solo_orpo/model"]["detail"]
    assert findings["results/eval/solo_orpo_lam0.5_ruler.json"]["status"] == "ok"  # now in the config again

    Path("ruler.yaml").write_text("eval: {ruler: {num_samples: 3}}\nseed: 42\n")
    rc, out = _run(capsys, "check", "--configfile", TINY, "ruler.yaml")
    assert rc == 1
    assert "STALE          results/eval/solo_orpo_ruler.json  [evaluate]: config changed: eval.ruler.num_samples" in out
    assert "results/train/solo_orpo/model" not in out

    Path("seed.yaml").write_text("seed: 7\n")
    rc, out = _run(capsys, "check", "--configfile", TINY, "seed.yaml")
    assert "STALE          results/extra/notes.json  [by keys]: seed" in out


def test_check_inputs_reports_upstream_rebuilds(tree, capsys):
    Path("results/datasets/tiny/solo.jsonl").write_text('{"id": "q2"}\n')
    rc, out = _run(capsys, "check", "--configfile", TINY, "--inputs")
    assert rc == 1
    assert "INPUT CHANGED  results/train/solo_orpo/model  [train]: results/datasets/tiny/solo.jsonl (changed)" in out


def test_check_reports_config_errors_in_one_line(tree, capsys):
    Path("bad.yaml").write_text("data: {short_tokens: 999999}\n")
    rc, out = _run(capsys, "check", "--configfile", TINY, "bad.yaml")
    assert rc == 2 and out.startswith("config error: data.short_tokens")


def test_check_names_a_missing_config_file_in_one_line(tree, capsys):
    rc, out = _run(capsys, "check", "--configfile", TINY, "no_such.yaml")
    assert rc == 2 and out.strip() == "solopo check: config file not found: no_such.yaml"


def test_console_script(tree):
    exe = Path(sys.executable).parent / "solopo"
    out = subprocess.run([str(exe), "provenance", "results/eval/solo_orpo_ruler.json", "--depth", "1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "results/train/solo_orpo/model" in out.stdout and "results/datasets" not in out.stdout


# --------------------------------------------------------------------------- every artifact verifiable
def test_a_file_manifest_records_the_bytes_put_in_place(tmp_path):
    """Written before the file (the pipeline's order) or after it: the manifest holds the file's own sha256."""
    import hashlib

    before, after = tmp_path / "before.jsonl", tmp_path / "after.json"
    artifacts.write_manifest(before, {"seed": 1}, [])
    artifacts.write_jsonl(before, [{"id": "q1"}, {"id": "q2"}])
    artifacts.write_json(after, {"score": 1.0})
    artifacts.write_manifest(after, {"seed": 1}, [])
    for f in (before, after):
        m = json.loads(Path(f"{f}.manifest.json").read_text())
        assert m["content"] == {"sha256": hashlib.sha256(f.read_bytes()).hexdigest(), "bytes": f.stat().st_size}


@pytest.mark.parametrize("path", ["results/data/musique_train.jsonl", "results/eval/solo_orpo_ruler.json"])
def test_check_inputs_reports_a_changed_byte_in_a_file_artifact(tree, capsys, path):
    rc, out = _run(capsys, "check", "--configfile", TINY, "--inputs")
    assert rc == 0, out
    data = bytearray(Path(path).read_bytes())
    data[3] ^= 1  # one bit: same size, same mtime resolution, valid-looking JSON
    Path(path).write_bytes(bytes(data))
    rc, out = _run(capsys, "check", "--configfile", TINY, "--inputs")
    assert rc == 1
    line = next(ln for ln in out.splitlines() if ln.startswith("DAMAGED") and f" {path} " in ln)
    assert f"{path}: content changed since it was written (sha256 " in line
    assert f"{path}.manifest.json records " in line and "rerun snakemake" in line


@pytest.mark.parametrize("gone,line", [
    ("results/eval/solo_orpo_ruler.json",
     ("MISSING        results/eval/solo_orpo_ruler.json: the artifact is gone but its manifest "
      "results/eval/solo_orpo_ruler.json.manifest.json remains")),
    ("results/train/solo_orpo/model/model.safetensors",
     ("MISSING        results/train/solo_orpo/model: results/train/solo_orpo/model/model.safetensors recorded in "
      "results/train/solo_orpo/model/manifest.json is gone")),
])
def test_plain_check_reports_an_artifact_gone_while_its_manifest_remains(tree, capsys, gone, line):
    model = Path("results/train/solo_orpo/model")
    artifacts.write_folder_manifest(model, model, slices.train(_cfg(), run_table(_cfg())["solo_orpo"]),
                                    ["results/datasets/tiny/solo.jsonl"], 0.0)  # with its files' hashes
    assert _run(capsys, "check", "--configfile", TINY)[0] == 0
    Path(gone).unlink()
    rc, out = _run(capsys, "check", "--configfile", TINY)
    assert rc == 1
    assert line in out, out
    assert out.splitlines()[-1] == "6 artifacts: 1 missing, 4 ok, 1 orphan"


def _cfg() -> dict:
    cfg = load_config([TINY])
    validate_config(cfg)
    return cfg


def test_a_truncated_manifest_is_named_in_one_line(tree, capsys):
    m = Path("results/datasets/tiny/solo.jsonl.manifest.json")
    m.write_text(m.read_text()[:40])
    rc, out = _run(capsys, "check", "--configfile", TINY)
    assert rc == 1
    assert "DAMAGED        results/datasets/tiny/solo.jsonl: results/datasets/tiny/solo.jsonl.manifest.json: manifest " \
           "is not valid JSON (" in out and "delete it and rerun snakemake" in out, out
    rc, out = _run(capsys, "provenance", "results/train/solo_orpo/model")
    assert rc == 2
    assert out.startswith("solopo provenance: results/datasets/tiny/solo.jsonl.manifest.json: manifest is not valid JSON")
    assert out.count("\n") == 1, out


@pytest.mark.parametrize("text,message", [
    ("- seed: 1\n- data: {}\n", "the top level is a YAML list; allowed: a mapping of config keys"),
    ("seed: [1,\n", "not valid YAML at line 2"),
])
def test_check_names_a_config_file_that_is_not_a_mapping(tree, capsys, text, message):
    Path("list.yaml").write_text(text)
    rc, out = _run(capsys, "check", "--configfile", TINY, "list.yaml")
    assert rc == 2
    assert out.startswith(f"config error: list.yaml: {message}") and out.count("\n") == 1, out
