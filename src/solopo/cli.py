"""`solopo` command line: provenance of artifacts and a config-staleness check.

    solopo provenance results/eval/solo_orpo_ruler.json   # the manifest chain, recursively
    solopo check --configfile config/tiny.yaml            # artifacts the current config would rebuild
    python -m solopo stage logs/contexts/tiny.log.call.yaml   # one rule's call, inside its env (solopo.stage)

Both read only manifests (and, for hashes, the input files); neither runs Snakemake.
See `solopo.report.provenance` for how `check` recomputes each artifact's config slice.
"""
from __future__ import annotations

import argparse
import json
import sys


def _provenance(args) -> int:
    from pathlib import Path

    from solopo.artifacts import DataError
    from solopo.report.provenance import chain, find_manifest, format_chain

    target = Path(args.artifact)
    full = target if target.is_absolute() else Path(args.directory) / target
    if find_manifest(full) is None:
        print(f"solopo provenance: {args.artifact}: no manifest found (looked for {args.artifact}.manifest.json "
              f"and {args.artifact}/manifest.json under {args.directory})", file=sys.stderr)
        return 2
    try:
        node = chain(args.artifact, args.directory, hashes=not args.no_hash, max_depth=args.depth)
    except DataError as e:  # a manifest in the chain that is not valid JSON
        print(f"solopo provenance: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(node.to_dict(), indent=2))
    else:
        print(format_chain(node))
    return 0


def _check(args) -> int:
    from solopo.config import ConfigError, validate_config
    from solopo.report.provenance import (
        FAILING,
        base_config,
        check,
        format_findings,
        load_config,
    )

    try:
        base = None if args.no_base_config else (args.base_config or base_config(args.directory))
    except FileNotFoundError as e:
        print(f"solopo check: {e}", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.configfile or [], base)
        validate_config(cfg, args.directory)
    except FileNotFoundError as e:
        print(f"solopo check: config file not found: {e.filename}", file=sys.stderr)
        return 2
    except ConfigError as e:  # not YAML, not a mapping, or not valid against the schema
        print(str(e), file=sys.stderr)
        return 2
    findings = check(cfg, args.directory, inputs=args.inputs)
    if args.json:
        print(json.dumps([vars(f) for f in findings], indent=2))
    else:
        print(format_findings(findings, args.verbose))
    return 1 if any(f.status in FAILING for f in findings) else 0


def _stage(args) -> int:
    from solopo.stage import run_call

    run_call(args.call_file)  # an exception exits non-zero with its traceback; the job's log has it too
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="solopo", description="SoLoPO reproduction: artifact provenance tools")
    sub = p.add_subparsers(dest="command", required=True)

    pv = sub.add_parser("provenance", help="print an artifact's manifest chain (config hash, inputs, commit, versions, "
                                           "wall time), following its inputs' manifests recursively")
    pv.add_argument("artifact", help="a file or folder under results/ (or its manifest)")
    pv.add_argument("-d", "--directory", default=".", help="the workflow directory manifests' paths are relative to")
    pv.add_argument("--no-hash", action="store_true", help="do not re-hash inputs to see whether they changed")
    pv.add_argument("--depth", type=int, default=50, help="how many input levels to follow")
    pv.add_argument("--json", action="store_true", help="machine-readable output")
    pv.set_defaults(func=_provenance)

    ck = sub.add_parser("check", help="flag artifacts whose manifest's config slice no longer matches the current config, "
                                      "and artifacts gone while their manifest remains")
    ck.add_argument("--configfile", nargs="+", action="extend", metavar="YAML",
                    help="config files merged over config/config.yaml, as snakemake --configfile")
    ck.add_argument("--base-config", help="the workflow's own config (default: config/config.yaml in --directory)")
    ck.add_argument("--no-base-config", action="store_true", help="use only the --configfile files")
    ck.add_argument("-d", "--directory", default=".", help="the workflow directory (holding results/)")
    ck.add_argument("--inputs", action="store_true", help="also re-hash every recorded input and verify every artifact's bytes "
                    "(files, and a folder's files, weights included) against the content its manifest recorded (slower)")
    ck.add_argument("-v", "--verbose", action="store_true", help="also list artifacts that are up to date")
    ck.add_argument("--json", action="store_true", help="machine-readable output")
    ck.set_defaults(func=_check)

    st = sub.add_parser("stage", help="run one pipeline stage from the call file a workflow rule wrote "
                                      "(how rules run inside their conda env; see solopo.stage)")
    st.add_argument("call_file", help="<log>.call.yaml written by the rule")
    st.set_defaults(func=_stage)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
