"""`mova-eval arena …`: serve, import, export, leaderboard (registered by mova_eval.cli when this module exists)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_DB = "arena.db"


def _limit(text: str):
    from mova_eval.arena.integrity import Limit

    try:
        n, _, per = text.partition("/")
        return Limit(int(n), {"s": 1.0, "min": 60.0, "h": 3600.0}[per or "min"])
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"{text!r}: expected N/s, N/min or N/h") from None


def _policy_args(p) -> None:
    """The counting policy (rating.CountingPolicy): the same flags on serve and leaderboard, so an export's board
    can be recomputed with the server's rules."""
    from mova_eval.arena.rating import CountingPolicy

    d = CountingPolicy()
    g = p.add_argument_group("counting policy (which votes count, and how much)")
    g.add_argument("--probation-votes", type=int, default=d.probation_votes,
                   help="a voter's votes count after this many unflagged votes or after passing the gold checks (0: off)")
    g.add_argument("--probation-gold", type=int, default=d.probation_gold, help="gold answers needed to pass probation")
    g.add_argument("--cap-voter", type=float, default=d.cap_voter, help="total weight of one voter's votes (0: no cap)")
    g.add_argument("--cap-ip", type=float, default=d.cap_ip, help="total weight of one IP's votes (0: no cap)")
    g.add_argument("--bias-z", type=float, default=d.bias_z,
                   help="shadow-exclude voters/IPs whose votes favour one model this many SDs beyond the fit (0: off)")


def _policy(args):
    from dataclasses import replace

    from mova_eval.arena.rating import CountingPolicy

    return replace(CountingPolicy(), probation_votes=args.probation_votes, probation_gold=args.probation_gold,
                   cap_voter=args.cap_voter, cap_ip=args.cap_ip, bias_z=args.bias_z)


def register(sub) -> None:
    p = sub.add_parser("arena", help="the voting arena: serve, import runs, export votes, leaderboard")
    asub = p.add_subparsers(dest="arena_command", metavar="ACTION")
    asub.required = True

    s = asub.add_parser("serve", help="run the web service (page, API, OpenAPI docs at /docs)")
    s.add_argument("--db", default=DEFAULT_DB, help="SQLAlchemy URL or SQLite file (default: arena.db)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--media-dir", default=None, help="playback copies (default: remembered by `arena import`)")
    s.add_argument("--min-listen", type=float, default=3.0, help="seconds each side must be heard before voting")
    s.add_argument("--gold-rate", type=float, default=0.1, help="share of battles that are gold (if gold pairs exist)")
    s.add_argument("--vote-limit", type=_limit, default="20/min", help="votes per voter (N/s, N/min, N/h)")
    s.add_argument("--ip-vote-limit", type=_limit, default="300/min", help="votes per IP address")
    s.add_argument("--battle-limit", type=_limit, default="30/min", help="battles per voter")
    s.add_argument("--ip-battle-limit", type=_limit, default="600/min", help="battles per IP address")
    s.add_argument("--sqlite-sync", default="full", choices=["full", "normal", "extra"],
                   help="SQLite synchronous mode (full: no acknowledged vote is lost even on power loss)")
    s.add_argument("--session-limit", type=_limit, default="20/h", help="new voter sessions per IP address")
    s.add_argument("--trust-forwarded-for", type=int, nargs="?", const=1, default=0, metavar="N",
                   help="behind N reverse proxies (default 1 when given): the client IP is the X-Forwarded-For entry "
                        "the outermost proxy appended; entries the client wrote are ignored")
    s.add_argument("--secure-cookies", action="store_true", help="mark the voter cookie Secure (serve over HTTPS)")
    s.add_argument("--variant-pad", type=float, default=1.5,
                   help="pad every variant to the largest playback copy of its frame size, rate and duration times "
                        "this, so sizes do not identify a clip (0: no padding)")
    s.add_argument("--no-variants", dest="variants", action="store_false",
                   help="serve the playback copies themselves instead of per-battle variants (bytes then repeat)")
    _policy_args(s)
    s.add_argument("--log-level", default="warning")
    s.set_defaults(func=cmd_serve)

    i = asub.add_parser("import", help="add clips from run directories to the battle pool")
    i.add_argument("runs", nargs="+", metavar="RUN_DIR[=LABEL]",
                   help="run directories (mova-eval run outputs); LABEL names the model (default: generator label/name)")
    i.add_argument("--db", default=DEFAULT_DB)
    i.add_argument("--media-dir", default=None, help="where playback copies go (default: DB name + '-media')")
    i.add_argument("--gold", type=int, default=0, help="also make N gold pairs (sound shifted 500 ms vs in sync)")
    i.set_defaults(func=cmd_import)

    e = asub.add_parser("export", help="write votes (parquet + JSONL) and the clip manifest")
    e.add_argument("--db", default=DEFAULT_DB)
    e.add_argument("--out", required=True)
    e.set_defaults(func=cmd_export)

    lb = asub.add_parser("leaderboard", help="compute the board (JSON + Markdown) from a database or an export")
    src = lb.add_mutually_exclusive_group(required=True)
    src.add_argument("--db")
    src.add_argument("--from", dest="from_dir", metavar="DIR", help="an `arena export` folder")
    lb.add_argument("--out", default=None, help="write leaderboard.json and leaderboard.md here (default: print)")
    lb.add_argument("--bootstrap", type=int, default=200, help="bootstrap rounds (seeded: the result is exact)")
    lb.add_argument("--ci", default="sandwich", choices=["sandwich", "bootstrap"], help="interval used for ranks")
    lb.add_argument("--provisional", type=int, default=50, help="provisional under this many votes")
    lb.add_argument("--reweight", action="store_true", help="inverse-propensity weights from the stored pair probability")
    lb.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    _policy_args(lb)
    lb.set_defaults(func=cmd_leaderboard)

    ag = asub.add_parser("agreement", help="agreement of metrics with the votes: per battle, model ranks, sub-votes",
                         description="Compare the metrics of run directories that scored the arena's clips with the "
                                     "human votes (docs/agreement.md).")
    src = ag.add_mutually_exclusive_group(required=True)
    src.add_argument("--db")
    src.add_argument("--from", dest="from_dir", metavar="DIR", help="an `arena export` folder")
    ag.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories whose clips were imported")
    ag.add_argument("--out", default=None, help="write agreement.json/.md/.png here (default: print Markdown)")
    ag.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds per battle figure (seeded)")
    ag.add_argument("--bootstrap-models", type=int, default=200, help="bootstrap rounds (BT refits) for τ and ρ")
    _policy_args(ag)
    ag.set_defaults(func=cmd_agreement)


def cmd_serve(args) -> int:
    import uvicorn

    from mova_eval.arena.app import Settings, create_app

    settings = Settings(db_url=args.db, media_dir=args.media_dir, min_listen_s=args.min_listen,
                        gold_rate=args.gold_rate, vote_limit_voter=args.vote_limit, vote_limit_ip=args.ip_vote_limit,
                        battle_limit_voter=args.battle_limit, battle_limit_ip=args.ip_battle_limit,
                        sqlite_sync=args.sqlite_sync, trust_forwarded_for=args.trust_forwarded_for,
                        secure_cookies=args.secure_cookies, session_limit_ip=args.session_limit,
                        policy=_policy(args), variants=args.variants,
                        variant_pad=args.variant_pad)
    app = create_app(settings)
    print(f"arena on http://{args.host}:{args.port}/  (leaderboard /leaderboard, API docs /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


def cmd_import(args) -> int:
    from mova_eval.arena.pool import add_gold, import_runs, media_dir_for, parse_run_arg
    from mova_eval.arena.storage import Store

    store = Store(args.db)
    media = media_dir_for(store, args.media_dir)
    report = import_runs(store, [parse_run_arg(r) for r in args.runs], media)
    if args.gold:
        report.gold = add_gold(store, media, args.gold)
    for line in report.lines():
        print(line)
    from mova_eval.arena.pairing import Pool

    pool = Pool(store)
    print(f"pool: {len(pool.models)} models, {len(pool.pairs)} pairs with shared prompts, {len(pool.gold)} gold pairs")
    if not pool.pairs:
        print("warning: no two models share a prompt yet; import another generator's run of the same suite",
              file=sys.stderr)
    return 0


def cmd_export(args) -> int:
    from mova_eval.arena.export import export
    from mova_eval.arena.storage import Store

    meta = export(Store(args.db), args.out)
    print(f"exported {meta['votes']} votes and {meta['clips']} clips to {args.out}")
    return 0


def cmd_leaderboard(args) -> int:
    from mova_eval.arena import rating
    from mova_eval.arena.export import load_votes, read_export
    from mova_eval.arena.storage import Store

    votes = read_export(args.from_dir) if args.from_dir else load_votes(Store(args.db))
    lb = rating.leaderboard(votes, n_boot=args.bootstrap, ci=args.ci, provisional_votes=args.provisional,
                            reweight=args.reweight, policy=_policy(args))
    text_json = json.dumps(lb, indent=2, allow_nan=False, default=_jsonable)
    md = rating.to_markdown(lb)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "leaderboard.json").write_text(text_json + "\n", encoding="utf-8")
        (out / "leaderboard.md").write_text(md, encoding="utf-8")
        print(f"wrote {out / 'leaderboard.json'} and {out / 'leaderboard.md'}")
    else:
        print(text_json if args.json else md)
    return 0


def cmd_agreement(args) -> int:
    from mova_eval.arena import agreement

    if args.from_dir:
        import pandas as pd

        from mova_eval.arena.export import read_export

        votes, manifest = read_export(args.from_dir), pd.read_parquet(Path(args.from_dir) / "clips.parquet")
    else:
        from mova_eval.arena.export import load_manifest, load_votes
        from mova_eval.arena.storage import Store

        store = Store(args.db)
        votes, manifest = load_votes(store), load_manifest(store)
    res = agreement.agreement(votes, manifest, args.runs, n_boot=args.bootstrap, n_boot_models=args.bootstrap_models,
                              policy=_policy(args))
    if args.out:
        for f in agreement.write(res, args.out):
            print(f"wrote {f}")
    else:
        print(agreement.to_markdown(res))
    return 0


def _jsonable(x):
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
