"""Download rules (workflow/rules/download.smk): fetched on the submitting host, read offline on nodes."""
import pytest
import yaml

from tests.reduced_pipeline import ROOT


def _ruler_cfg(source: str) -> dict:
    cfg = yaml.safe_load((ROOT / "config/tiny.yaml").read_text())
    cfg["eval"]["ruler"]["source"] = source
    return cfg


def test_ruler_from_downloaded_sources_offline_equals_fixture_path(toy_records, tiny_lm_dir, tmp_path, monkeypatch):
    """A compute-node job (HF_HUB_OFFLINE=1) builds RULER from the copy download_ruler made: no network
    call, and the same items as building from the same source files in place."""
    from solopo import pipeline
    from solopo.artifacts import write_jsonl
    from solopo.eval import ruler

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dev = tmp_path / "dev.jsonl"
    write_jsonl(dev, toy_records)
    fixture_cfg = _ruler_cfg("fixture")
    pipeline.bench_data("ruler", str(dev), tiny_lm_dir, str(tmp_path / "fixture"), fixture_cfg, 42, str(tmp_path / "a.log"))
    # what download_ruler leaves in resources/benchmarks/ruler_sources (released file names)
    sources = tmp_path / "ruler_sources"
    ruler.build_fixture(toy_records, sources, fixture_cfg["eval"]["ruler"], 42)
    (sources / "manifest.json").write_text("{}")
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE=1"):  # without the copy: the download, refused offline
        pipeline.bench_data("ruler", None, tiny_lm_dir, str(tmp_path / "nocopy"), _ruler_cfg("hub"), 42, str(tmp_path / "c.log"))
    pipeline.bench_data("ruler", None, tiny_lm_dir, str(tmp_path / "hub"), _ruler_cfg("hub"), 42, str(tmp_path / "b.log"),
                        str(sources))
    a = (tmp_path / "fixture/items.jsonl").read_bytes()
    assert a and a == (tmp_path / "hub/items.jsonl").read_bytes()


def test_model_download_refuses_offline_in_one_line(tmp_path, monkeypatch):
    from solopo import download

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError) as e:
        download.model("Qwen/Qwen2.5-7B-Instruct", str(tmp_path / "m"), str(tmp_path / "log"))
    assert "HF_HUB_OFFLINE=1" in str(e.value) and "localrules" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "m").exists()


def test_paper_backbones_are_read_from_resources(tmp_path):
    """The paper preset's jobs read the backbone from resources/models/<name> (download_model, a local
    rule, runs first), never the hub id."""
    import re

    from tests.test_slurm import dry_run_jobs

    jobs, text = dry_run_jobs("results/samples/qwen25_7b/short.jsonl", "--directory", str(tmp_path),
                              "--snakefile", str(ROOT / "Snakefile"))
    rules = [r for r, _ in jobs]
    assert set(rules[:2]) == {"download_model", "fetch_musique"} and rules[2:] == ["contexts", "sample"], rules
    for rule in ("contexts", "sample"):
        block = re.search(rf"^rule {rule}:\n(.*?)\n\n", text, re.M | re.S).group(1)
        assert "resources/models/qwen25_7b" in block and "Qwen/" not in block, block
