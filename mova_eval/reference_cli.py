"""``mova-eval reference build|list|show``: named reference statistics for FVD and FAD (see mova_eval.references).

``build NAME --metric fvd --from DIR [--protocol P] [--force]`` decodes every media file under DIR (videos for FVD;
videos or audio files for FAD), extracts features with exactly the code path a run uses (same preprocessing, same
feature cache), and stores mean/covariance state, n, the protocol, the extractor and its weights' sha256. Files that
cannot be used are listed with their reason and left out; nothing is repeated to reach a count.
"""
from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

from mova_eval.context import RunContext

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")


def _media_files(folder: Path, audio_ok: bool) -> list[Path]:
    from mova_eval.media import VIDEO_EXTENSIONS

    exts = VIDEO_EXTENSIONS + (AUDIO_EXTENSIONS if audio_ok else ())
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in exts)


def _parse_options(pairs: list[str] | None) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for p in pairs or []:
        if "=" not in p:
            raise SystemExit(f"mova-eval reference build: option {p!r} is not KEY=VALUE")
        k, v = p.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def build(name: str, metric: str, source: str | Path, *, protocol: str | None = None, options: dict[str, Any] | None = None,
          force: bool = False, device: str = "cpu", progress: bool = True, context: RunContext | None = None
          ) -> dict[str, Any]:
    """Build and store a reference; returns its meta. Raises ReferenceError/MovaEvalError with what to do.
    ``context`` (default: the environment's) says where the cache, the references and the weights are."""
    import numpy as np
    from tqdm import tqdm

    from mova_eval import media, references
    from mova_eval.cache import Cache, make_key
    from mova_eval.errors import ConfigError
    from mova_eval.metrics import frechet
    from mova_eval.metrics.base import ReferenceMetric
    from mova_eval.metrics.options import known_keys
    from mova_eval.registry import get_metric_class, metric_classes
    from mova_eval.spec import SuiteItem

    context = context if context is not None else RunContext.from_env(device=device)
    references.check_name(name)
    if references.exists(name, context) and not force:
        raise references.ReferenceError(f"reference {name!r} already exists; pass --force to replace it")
    cls = get_metric_class(metric)
    if not issubclass(cls, ReferenceMetric):
        users = ", ".join(n for n, c in metric_classes().items() if issubclass(c, ReferenceMetric))
        raise ConfigError(f"metric {metric!r} does not use reference statistics ({users} do)")
    opts = dict(options or {})
    if protocol and "protocol" in known_keys(cls.Options):  # FVD chooses its protocol; FAD's is fixed per metric
        opts["protocol"] = protocol
    m = cls(opts, device=device, context=context)
    actual_protocol = m.protocol_name
    if protocol and protocol != actual_protocol:
        raise ConfigError(f"metric {metric!r} has protocol {actual_protocol!r}; --protocol {protocol!r} does not apply")
    folder = Path(source)
    if not folder.is_dir():
        raise ConfigError(f"--from {folder}: not a directory")
    files = _media_files(folder, audio_ok="audio" in cls.info.needs)
    if not files:
        raise ConfigError(f"--from {folder}: no media files found")
    m.load_extractor()
    token = m.cache_token()
    cache = Cache("features", context=context)
    feats: list[np.ndarray] = []
    used: list[str] = []
    excluded: list[dict[str, str]] = []
    for f in tqdm(files, desc=f"reference {name}", unit="file", disable=not progress):
        try:
            clip = media.decode(f, video="video" in cls.info.needs, audio="audio" in cls.info.needs)
            item = SuiteItem(id=f.stem, category="reference", prompt="")
            key = make_key("features", clip.content_hash, cls.info.name, token)
            feats.append(np.asarray(cache.get_or_compute(key, partial(m.features, clip, item))))
            used.append(str(f.relative_to(folder)))
        except Exception as e:  # one unusable file is reported and left out, never fatal
            excluded.append({"file": str(f.relative_to(folder)), "reason": f"{type(e).__name__}: {e}"})
    if len(feats) < 2:
        raise ConfigError(f"--from {folder}: only {len(feats)} usable file(s) of {len(files)}; a reference needs ≥ 2"
                          + (f" (first problem: {excluded[0]['reason']})" if excluded else ""))
    rows = [frechet.unpack_features(x)[0] for x in feats]
    x = np.concatenate(rows)
    stats = frechet.GaussianStats.of(x)
    clip_index = np.concatenate([np.full(r.shape[0], i) for i, r in enumerate(rows)])
    meta: dict[str, Any] = {"metric": cls.info.name, "protocol": actual_protocol, "extractor": m.extractor_id(),
            "n_clips": len(rows), "n_vectors": stats.n, "dim": stats.dim, "source": str(folder.resolve()),
            "files": used, "excluded": excluded, "options": opts,
            "sample_size_warning": frechet.sample_size_warning(stats.n, stats.dim) or None}
    meta.update(m.reference_meta(feats))
    references.save(name, meta, stats, x, clip_index, force=force, context=context)
    return meta


def cmd_reference(args: argparse.Namespace) -> int:
    import json

    from mova_eval import references

    if args.action == "build":
        meta = build(args.name, args.metric, args.source, protocol=args.protocol, options=_parse_options(args.option),
                     force=args.force, device=args.device, progress=not args.quiet)
        print(f"reference {args.name!r}: {meta['metric']} / {meta['protocol']}, n={meta['n_clips']} clips "
              f"({meta['n_vectors']} feature vectors, {meta['dim']}-d), {len(meta['excluded'])} excluded")
        for e in meta["excluded"]:
            print(f"  excluded {e['file']}: {e['reason']}")
        if meta.get("sample_size_warning"):
            print(f"  warning: {meta['sample_size_warning']}")
        print(f"use it with: mova-eval run metrics.only=[{meta['metric']}] "
              f"metrics.options.{meta['metric']}.reference={args.name}")
        return 0
    if args.action == "list":
        refs = references.list_references()
        if not refs:
            print(f"(no reference statistics in {references.references_dir()})")
        for r in refs:
            print(f"{r['name']:<24} {r.get('metric', '?'):<10} {r.get('protocol', '?'):<16} n={r.get('n_clips', '?'):<6}"
                  f" {r.get('created', '')}  {r.get('source', '')}")
        return 0
    if args.action == "show":
        ref = references.load(args.name, metric="?")
        print(json.dumps({k: v for k, v in ref.meta.items() if k != "files"}, indent=2, sort_keys=True))
        return 0
    return 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = subparsers.add_parser("reference", help="build and list named reference statistics for FVD / FAD")
    rs = r.add_subparsers(dest="action", metavar="ACTION")
    rs.required = True
    b = rs.add_parser("build", help="compute and store reference statistics from a folder of media files",
                      formatter_class=argparse.RawDescriptionHelpFormatter,
                      description="Examples:\n  mova-eval reference build ucf_real --metric fvd --from DIR "
                                  "--protocol fvd_styleganv\n  mova-eval reference build verse_gt --metric fad --from DIR")
    b.add_argument("name", metavar="NAME")
    b.add_argument("--from", dest="source", required=True, metavar="DIR", help="folder of real clips / audio files")
    b.add_argument("--metric", required=True, help="fvd, fad, fad_panns or fad_clap")
    b.add_argument("--protocol", help="named protocol (fvd: fvd_styleganv, fvd_tf, fvd_cdfvd)")
    b.add_argument("--option", "-o", action="append", metavar="KEY=VALUE", help="extra metric option (e.g. fps=25)")
    b.add_argument("--device", default="cpu")
    b.add_argument("--force", action="store_true", help="replace an existing reference of that name")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    rs.add_parser("list", help="every stored reference")
    s = rs.add_parser("show", help="one reference's metadata")
    s.add_argument("name", metavar="NAME")
    r.set_defaults(func=cmd_reference)


if __name__ == "__main__":  # pragma: no cover
    from mova_eval.cli import main

    sys.exit(main(["reference", *sys.argv[1:]]))
