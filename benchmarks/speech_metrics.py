"""Throughput and memory of the speech metrics on CPU: clips/s, peak RSS, and the share of time spent decoding.

    python benchmarks/speech_metrics.py                 # 50 clips of 8 s, every speech metric
    python benchmarks/speech_metrics.py --n 10 --metrics wer,dnsmos

Clips: two-voice espeak-ng dialogues padded to 8 s (so wer, cpwer, dnsmos and av_align all apply), muxed with a
textured, moving 320x240 24 fps picture into H.264 + AAC mp4. Each metric runs in its own child process (so its
peak RSS is its own), with a fresh cache; every clip's samples differ, so no transcript is reused. Per metric the child decodes every clip
(media.decode of the streams it needs — video only for av_align — plus its audio preset), loads the model once, scores every clip, and reports:
load time, clips/s of scoring alone, clips/s including decoding, decode share = decode / (decode + score),
and peak RSS (ru_maxrss). Needs espeak-ng.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LINES = [
    ("Did you finish the report last night?", "Yes, I sent it before midnight."),
    ("Where should we meet tomorrow?", "Let us meet at the station at noon."),
    ("Is the blue boat back in the harbor?", "It came back early this morning."),
    ("Can you bring the map and the torch?", "I will pack them in the red bag."),
    ("How long does the train take?", "About two hours if it is on time."),
]
VOICES = ("en-us", "en-us+f3")
SR, FPS, SECONDS = 48_000, 24, 8.0
METRICS = {"wer": "mova_eval.metrics.wer:WerMetric", "cpwer": "mova_eval.metrics.speaker_attribution:CpWerMetric",
           "dnsmos": "mova_eval.metrics.dnsmos:DnsmosMetric", "av_align": "mova_eval.metrics.av_align:AvAlignMetric"}


def speak(text: str, voice: str) -> np.ndarray:
    import soundfile as sf

    from mova_eval import media

    with tempfile.TemporaryDirectory() as d:
        wav = Path(d) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True, capture_output=True)
        x, sr = sf.read(wav, dtype="float32")
    return media.resample_audio(x, sr, SR)


def make_clips(folder: Path, n: int) -> list[tuple[Path, str]]:
    from mova_eval import media

    rng = np.random.default_rng(0)
    texture = (rng.random((240 + 64, 320 + 64)) * 255).astype(np.uint8)
    out = []
    for i in range(n):
        a, b = LINES[i % len(LINES)]
        parts = [np.zeros(int(0.3 * SR), np.float32), speak(a, VOICES[0]), np.zeros(int(0.6 * SR), np.float32),
                 speak(b, VOICES[1])]
        audio = np.concatenate(parts)
        audio = np.pad(audio, (0, max(0, int(SECONDS * SR) - audio.size)))[: int(SECONDS * SR)]
        # a little noise of its own per clip: no two clips share samples, so no transcript comes from the cache
        audio = audio + (1e-3 * rng.standard_normal(audio.size)).astype(np.float32)
        frames = []
        for k in range(int(SECONDS * FPS)):
            off = (k * 2 + i) % 64
            frames.append(np.repeat(texture[off:off + 240, off:off + 320, None], 3, axis=2))
        p = media.encode(folder / f"clip_{i:03d}.mp4", np.stack(frames), FPS, audio, SR)
        out.append((p, f"[S01] {a} [S02] {b}"))
    return out


def child(metric: str, manifest: Path) -> dict:
    import importlib

    from mova_eval import media
    from mova_eval.spec import SuiteItem

    mod, cls = METRICS[metric].split(":")
    klass = getattr(importlib.import_module(mod), cls)
    clips = json.loads(manifest.read_text())
    t0 = time.perf_counter()
    m = klass()
    m.load()
    load_s = time.perf_counter() - t0
    presets = {"wer": "mova_eval.metrics.wer:ASR_PRESET", "cpwer": "mova_eval.metrics.wer:ASR_PRESET",
               "dnsmos": "mova_eval.metrics.dnsmos:PRESET", "av_align": "mova_eval.metrics.av_align:PRESET"}
    pmod, pname = presets[metric].split(":")
    preset = getattr(importlib.import_module(pmod), pname)
    decode_s = score_s = 0.0
    failures = 0
    for path, text in clips:
        item = SuiteItem(id=Path(path).stem, category="bench", prompt="p", language="en", speech_text=text)
        t = time.perf_counter()
        clip = media.decode(path, video=metric == "av_align")
        clip.audio_for(preset)
        decode_s += time.perf_counter() - t
        t = time.perf_counter()
        s = m.score(clip, item)
        score_s += time.perf_counter() - t
        failures += bool(s.errors)
    if metric in ("wer", "cpwer"):
        from mova_eval.cache import Cache

        cached = sum(1 for _ in Cache("asr").dir.rglob("*.pkl"))
        assert cached >= len(clips), f"expected ≥ {len(clips)} fresh transcripts, found {cached}"
    n = len(clips)
    return {"metric": metric, "clips": n, "load_s": round(load_s, 2), "decode_s": round(decode_s, 2),
            "score_s": round(score_s, 2), "clips_per_s_score": round(n / score_s, 3),
            "clips_per_s_total": round(n / (score_s + decode_s), 3),
            "decode_share": round(decode_s / (decode_s + score_s), 3), "failures": failures,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--metrics", default=",".join(METRICS))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--manifest", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.manifest))))
        return
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is needed (apt-get install -y espeak-ng)")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        t = time.perf_counter()
        clips = make_clips(d, args.n)
        print(f"made {len(clips)} clips of {SECONDS:.0f} s in {time.perf_counter() - t:.1f} s", flush=True)
        manifest = d / "clips.json"
        manifest.write_text(json.dumps([(str(p), s) for p, s in clips]))
        rows = []
        for metric in args.metrics.split(","):
            env = {**os.environ, "MOVA_EVAL_CACHE": str(d / f"cache-{metric}"), "HF_HUB_OFFLINE": "1"}
            r = subprocess.run([sys.executable, __file__, "--child", metric, "--manifest", str(manifest)],
                               capture_output=True, text=True, env=env)
            if r.returncode != 0:
                print(f"{metric}: failed\n{r.stderr[-2000:]}", flush=True)
                continue
            row = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'metric':10} {'clips/s':>8} {'w/ decode':>10} {'decode %':>9} {'load s':>7} {'peak RSS MB':>12} {'fail':>5}")
    for r in rows:
        print(f"{r['metric']:10} {r['clips_per_s_score']:8.3f} {r['clips_per_s_total']:10.3f} "
              f"{100 * r['decode_share']:8.1f}% {r['load_s']:7.2f} {r['peak_rss_mb']:12.1f} {r['failures']:5d}")
    print(f"cpu cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
