"""Bad input data: malformed MuSiQue rows and benchmark files with a wrong schema.

Every malformed MuSiQue line raises `DataError("<file>:<line>: <problem>")`; with
`allow_skip=True` it is skipped and counted by reason, and `fetch_musique` (the real
Snakemake rule, `data.source: local`, `data.skip_malformed: true`) writes the counts into
the manifest. Each benchmark loader names the file and the line (JSONL) or item (JSON).
The messages asserted here are the ones quoted in docs/bad_inputs.md.
"""
import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from solopo.artifacts import DataError
from solopo.data.musique import read_musique, validate_record

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


@pytest.fixture(scope="module")
def good(toy_records):
    return [copy.deepcopy(r) for r in toy_records[:3]]


def _line(obj) -> bytes:
    return (json.dumps(obj) + "\n").encode()


def _mutate(rec, how):
    r = copy.deepcopy(rec)
    how(r)
    return r


def _no_support(r):
    for p in r["paragraphs"]:
        p["is_supporting"] = False


# (case id, bytes of the bad line built from a good record, message after "<file>:2: ", skip reason)
BAD_LINES = [
    ("missing field", lambda g: _line(_mutate(g, lambda r: r.pop("answer"))),
     "missing field 'answer'", "missing field 'answer'"),
    ("missing paragraph field", lambda g: _line(_mutate(g, lambda r: r["paragraphs"][0].pop("title"))),
     "paragraphs[0].title missing or not str", "paragraphs[0].title missing or not str"),
    ("no supporting paragraph", lambda g: _line(_mutate(g, _no_support)),
     "no supporting paragraph (is_supporting is false everywhere)", "no supporting paragraph"),
    ("empty answer", lambda g: _line(_mutate(g, lambda r: r.update(answer="  "))), "empty answer", "empty answer"),
    ("bad JSON", lambda g: b'{"id": "2hop__1", "answer": }\n',
     "invalid JSON (Expecting value at column 29)", "invalid JSON"),
    ("truncated JSON", lambda g: _line(g)[:-40] + b"\n", None, "invalid JSON"),
    ("non-UTF-8 bytes", lambda g: _line(g).replace(b'"question": "', b'"question": "\xff\xfe', 1),
     None, "not valid UTF-8"),
    ("wrong type: answer", lambda g: _line(_mutate(g, lambda r: r.update(answer=7))),
     "field 'answer' should be str, got int", "field 'answer' should be str, got int"),
    ("wrong type: paragraphs", lambda g: _line(_mutate(g, lambda r: r.update(paragraphs="p1 p2"))),
     "field 'paragraphs' should be list, got str", "field 'paragraphs' should be list, got str"),
    ("wrong type: is_supporting", lambda g: _line(_mutate(g, lambda r: r["paragraphs"][0].update(is_supporting="yes"))),
     "paragraphs[0].is_supporting missing or not bool", "paragraphs[0].is_supporting missing or not bool"),
    ("not an object", lambda g: b'["a", "list"]\n', "expected a JSON object, got list", "expected a JSON object, got list"),
    ("unanswerable", lambda g: _line(_mutate(g, lambda r: r.update(answerable=False))),
     "answerable is false (MuSiQue-Full contrast question; only answerable questions are used)", "answerable is false"),
]


@pytest.mark.parametrize("case,make,message,reason", BAD_LINES, ids=[c[0] for c in BAD_LINES])
def test_malformed_line_names_file_and_line(tmp_path, good, case, make, message, reason):
    path = tmp_path / "musique_ans_v1.0_train.jsonl"
    path.write_bytes(_line(good[0]) + make(good[1]) + _line(good[2]))
    with pytest.raises(DataError) as e:
        read_musique(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:2: "), msg
    assert "\n" not in msg
    if message is not None:
        assert msg == f"{path}:2: {message}"
    if case == "non-UTF-8 bytes":
        assert re.fullmatch(rf"{re.escape(str(path))}:2: not valid UTF-8 \(byte \d+ of the line\)", msg), msg
    # allow_skip: the good records survive, the bad one is counted by its reason
    recs, skipped = read_musique(path, allow_skip=True)
    assert [r["id"] for r in recs] == [good[0]["id"], good[2]["id"]]
    assert skipped == {reason: 1}


def test_skip_counts_by_reason_and_blank_lines(tmp_path, good):
    path = tmp_path / "m.jsonl"
    body = _line(good[0]) + b"\n   \n"
    for _, make, _, _ in BAD_LINES:
        body += make(good[1])
    body += _line(_mutate(good[2], lambda r: r.update(answer="")))
    path.write_bytes(body + _line(good[2]))
    recs, skipped = read_musique(path, allow_skip=True)
    assert [r["id"] for r in recs] == [good[0]["id"], good[2]["id"]]
    assert sum(skipped.values()) == len(BAD_LINES) + 1
    assert skipped["invalid JSON"] == 2 and skipped["empty answer"] == 2


def test_all_lines_bad_or_empty_file(tmp_path, good):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"{oops\n" + _line(_mutate(good[0], lambda r: r.update(answer=""))))
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: no valid MuSiQue records$"):
        read_musique(path, allow_skip=True)
    path.write_bytes(b"")
    with pytest.raises(DataError, match="no valid MuSiQue records"):
        read_musique(path)


def test_validate_record_accepts_the_toy_world(good):
    assert all(validate_record(r) is None for r in good)


# --------------------------------------------------------------------------- through the pipeline


def _local_config(tmp_path, good, skip: bool):
    train = tmp_path / "train.jsonl"
    train.write_bytes(b"".join(_line(r) for r in good) + b"{not json\n"
                      + _line(_mutate(good[0], lambda r: r.update(answer=""))) + b"\xc3\x28\n")
    dev = tmp_path / "dev.jsonl"
    dev.write_bytes(b"".join(_line(r) for r in good))
    (tmp_path / "local.yaml").write_text(
        f"data: {{source: local, skip_malformed: {str(skip).lower()}, "
        f"musique: {{train_file: {train}, dev_file: {dev}}}}}\n")
    return train


def _sm(workdir, *args):
    return subprocess.run([SNAKEMAKE, *args, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
                           "--profile", str(ROOT / "profiles/local"), "--configfile", str(ROOT / "config/tiny.yaml"),
                           str(workdir / "local.yaml")], capture_output=True, text=True, timeout=300)


def test_fetch_musique_rule_writes_skip_counts_to_manifest(tmp_path, good):
    """The real rule on data.source: local with skip_malformed: the counts land in the manifest."""
    _local_config(tmp_path, good, skip=True)
    out = _sm(tmp_path, "results/data/musique_train.jsonl")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    res = tmp_path / "results/data"
    m = json.loads((res / "musique_train.jsonl.manifest.json").read_text())
    assert m["records"] == len(good)
    assert m["skipped"] == {"invalid JSON": 1, "empty answer": 1, "not valid UTF-8": 1}
    assert json.loads((res / "musique_dev.jsonl.manifest.json").read_text())["skipped"] == {}
    assert len((res / "musique_train.jsonl").read_text().splitlines()) == len(good)


def test_fetch_musique_rule_fails_naming_file_and_line(tmp_path, good):
    train = _local_config(tmp_path, good, skip=False)
    out = _sm(tmp_path, "results/data/musique_train.jsonl")
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert f"DataError: {train}:{len(good) + 1}: invalid JSON (Expecting property name enclosed in double quotes " \
           "at column 2)" in text, text[-3000:]
    assert not (tmp_path / "results/data/musique_train.jsonl").exists()


# --------------------------------------------------------------------------- benchmark files


def test_longbench_v1_wrong_schema_names_file_and_line(tmp_path, toy_records):
    from solopo.eval import longbench_v1

    longbench_v1.build_fixture(toy_records, tmp_path, {"fixture_items": 3}, seed=0)
    path = tmp_path / "hotpotqa.jsonl"
    rows = path.read_text().splitlines()
    bad = json.loads(rows[1])
    bad["answers"] = bad["answers"][0]  # a string instead of the released list of strings
    rows[1] = json.dumps(bad)
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as e:
        longbench_v1.load_items(tmp_path, {"datasets": ["hotpotqa"]})
    assert str(e.value) == f"{path}:2: field 'answers' should be list, got str"


def test_longbench_v2_wrong_schema_names_file_and_item(tmp_path, toy_records):
    from solopo.eval import longbench_v2

    longbench_v2.build_fixture(toy_records, tmp_path, {"fixture_items": 4}, seed=0)
    path = tmp_path / "data.json"
    data = json.loads(path.read_text())
    data[2]["answer"] = 1  # the released schema has a letter A-D
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as e:
        longbench_v2.load_items(tmp_path, {})
    assert str(e.value) == f"{path}: item 2: field 'answer' should be str, got int"


def test_ruler_sources_wrong_schema_name_file_and_item(tmp_path, toy_records):
    from solopo.eval import ruler

    sources = ruler.build_fixture(toy_records, tmp_path, {"fixture_more_paragraphs": 2}, seed=0)
    # SQuAD 2.0: a question without its text
    squad = json.loads(Path(sources["squad"]).read_text())
    del squad["data"][0]["paragraphs"][0]["qas"][0]["question"]
    Path(sources["squad"]).write_text(json.dumps(squad))
    with pytest.raises(DataError) as e:
        ruler.read_source("squad", sources["squad"])
    assert str(e.value) == f"{sources['squad']}: data[0].paragraphs[0].qas[0]: qa needs a 'question' string"
    # HotpotQA: a context paragraph that is not [title, [sentences]]
    hot = json.loads(Path(sources["hotpotqa"]).read_text())
    hot[0]["context"][1] = {"title": "x"}
    Path(sources["hotpotqa"]).write_text(json.dumps(hot))
    with pytest.raises(DataError) as e:
        ruler.read_source("hotpotqa", sources["hotpotqa"])
    assert str(e.value) == f"{sources['hotpotqa']}: item 0 (_id={hot[0]['_id']!r}) context[1]: expected [title, [sentence, ...]]"
    # MuSiQue: a record whose paragraphs lost a field, on line 2
    lines = Path(sources["musique"]).read_text().splitlines()
    rec = json.loads(lines[1])
    del rec["paragraphs"][0]["is_supporting"]
    lines[1] = json.dumps(rec)
    Path(sources["musique"]).write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        ruler.read_source("musique", sources["musique"])
    assert str(e.value) == (f"{sources['musique']}:2 paragraphs[0]: expected {{idx: int, title: str, "
                            "paragraph_text: str, is_supporting: bool}")


def test_niah_plus_wrong_schema_names_file_and_line(tmp_path):
    from solopo.eval import niah_plus

    good = {"id": "n1", "context": "haystack", "context_length": 100, "input": "q", "answers": ["a"],
            "dataset": "needle_squad", "depth_percent": 50}
    path = tmp_path / "needle_squad.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "answers": []}) + "\n")
    with pytest.raises(DataError) as e:
        niah_plus.load_items(tmp_path)
    assert str(e.value) == f"{path}:2: 'answers' must be a non-empty list of strings"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "dataset": "needle_hotpotqa"}) + "\n")
    with pytest.raises(DataError) as e:
        niah_plus.load_items(path)
    assert str(e.value) == f"{path}:2: missing field(s) depth_percent1, depth_percent2 for needle_hotpotqa"


def test_pipeline_jsonl_reader_names_file_and_line(tmp_path):
    """Every intermediate artifact (contexts, samples, pairs, datasets) is read with read_jsonl."""
    from solopo.artifacts import read_jsonl

    path = tmp_path / "pairs.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b"\n')
    with pytest.raises(DataError) as e:
        read_jsonl(path)
    assert str(e.value) == f"{path}:2: invalid JSON (Expecting ',' delimiter at column 11)"
    path.write_bytes(b'{"id": "a"}\n{"id": "\xe9"}\n')
    with pytest.raises(DataError) as e:
        read_jsonl(path)
    assert str(e.value) == f"{path}:2: not valid UTF-8 (byte 8 of the line): invalid continuation byte"


# --------------------------------------------------------------------------- the hub: offline, unreachable, hanging


def test_download_offline_says_what_to_do(monkeypatch):
    from solopo.data.musique import download_musique

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError) as e:
        download_musique("dgslibisey/MuSiQue", "train")
    assert str(e.value) == ("MuSiQue train from dgslibisey/MuSiQue: HF_HUB_OFFLINE=1 is set; set data.musique.train_file "
                            "to a local musique_ans_v1.0_*.jsonl or unset HF_HUB_OFFLINE")


@pytest.fixture()
def silent_hub():
    """An 'HF endpoint' that accepts connections and never answers (a hung proxy or firewall)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    t.join()
    for c in held:
        c.close()
    server.close()


def _closed_port() -> str:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: connection refused
    return f"http://127.0.0.1:{port}"


CALL = """
import sys, time
t0 = time.time()
try:
    if sys.argv[1] == "musique":
        from solopo.data.musique import download_musique
        download_musique("dgslibisey/MuSiQue", "train", cache_dir=sys.argv[2])
    else:
        from solopo.eval.longbench_v1 import hub_download
        hub_download("THUDM/LongBench", "data.zip", "LongBench v1")
    print("RETURNED")
except Exception as e:
    print("MESSAGE", e)
print("SECONDS", round(time.time() - t0, 1))
"""


def _download_online(endpoint: str, tmp_path, what="musique", **env) -> tuple[str, float]:
    """Call the downloader in a fresh process (huggingface_hub reads HF_ENDPOINT at import), online."""
    e = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_ETAG_TIMEOUT")}
    e.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf_home"), **env)
    out = subprocess.run([sys.executable, "-c", CALL, what, str(tmp_path / "cache")], capture_output=True, text=True,
                         timeout=600, env=e)
    msg = re.search(r"^MESSAGE (.*)$", out.stdout, re.M)
    assert msg, out.stdout + out.stderr[-3000:]
    return msg.group(1), float(re.search(r"^SECONDS (\S+)$", out.stdout, re.M).group(1))


def test_download_unreachable_hub_fails_fast(tmp_path):
    msg, seconds = _download_online(_closed_port(), tmp_path)
    assert msg == ("MuSiQue train: could not download musique_ans_v1.0_train.jsonl from dgslibisey/MuSiQue: "
                   "ConnectError: [Errno 111] Connection refused")
    assert seconds < 10  # huggingface_hub alone: ~23 s of retries
    msg, seconds = _download_online(_closed_port(), tmp_path, what="longbench_v1")
    assert msg == ("LongBench v1: cannot download THUDM/LongBench/data.zip (the Hugging Face hub is unreachable or "
                   "refused; ConnectError)")
    assert seconds < 10


def test_download_hanging_hub_fails_in_bounded_time(tmp_path, silent_hub):
    msg, seconds = _download_online(silent_hub, tmp_path, HF_HUB_ETAG_TIMEOUT="2")
    assert msg == ("MuSiQue train: could not download musique_ans_v1.0_train.jsonl from dgslibisey/MuSiQue: "
                   "ReadTimeout: timed out")
    assert seconds < 15  # two requests of 2 s; huggingface_hub alone: ~400 s (6 tries x 60 s + backoff)


@pytest.mark.slow
def test_download_hanging_hub_default_timeout_under_a_minute(tmp_path, silent_hub):
    msg, seconds = _download_online(silent_hub, tmp_path)
    assert msg.endswith("ReadTimeout: timed out")
    assert seconds < 60  # measured ~23 s (2 x 10 s); it was ~397 s before solopo.runtime.hub_download


def test_download_hanging_hub_falls_back_to_the_cache(tmp_path, silent_hub):
    """A file already in the HF cache is used when the hub does not answer (as hf_hub_download does, minus the wait)."""
    commit = "0" * 40
    repo = tmp_path / "cache" / "datasets--dgslibisey--MuSiQue"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "musique_ans_v1.0_train.jsonl").write_text("{}\n")
    e = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    e.update(HF_ENDPOINT=silent_hub, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_ETAG_TIMEOUT="1")
    out = subprocess.run([sys.executable, "-c", CALL.replace('print("RETURNED")', 'print("RETURNED", r)').replace(
        'download_musique("dgslibisey', 'r = download_musique("dgslibisey'), "musique", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=120, env=e)
    assert f"RETURNED {snap / 'musique_ans_v1.0_train.jsonl'}" in out.stdout, out.stdout + out.stderr[-3000:]
    assert float(re.search(r"^SECONDS (\S+)$", out.stdout, re.M).group(1)) < 10
