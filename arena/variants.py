"""Per-battle variants of the playback copies: different bytes in every battle, the same thing to judge.

Without them every battle serves the same file for a clip, so a voter who hashes what they download learns which
model made a clip from an earlier reveal, and recognises a gold twin (it has the bytes of a clip seen before). A
variant is the playback copy decoded and re-encoded (``mova_eval.media``: the one door to containers) after an
imperceptible dither drawn from a per-battle seed: every pixel moves by −1, 0 or +1 (of 255) and the sound gets
TPDF dither of one 16-bit step (≈ −98 dBFS). Changing any input value changes the H.264 and AAC bitstreams, so
neither the file nor its packets nor its decoded frames repeat across battles. ``benchmarks/arena_variants.py``
measures what it costs and that it moves no judged quantity beyond its noise (integrated loudness, frame PSNR
against the playback copy next to the PSNR of a plain re-encode).

Variants are made on the first media request of a battle side (not when the battle is issued, so voting
throughput does not pay for them), kept for the battle token's lifetime (a browser fetches ranges of the same file
several times) and then deleted. The seed is an HMAC of the battle id and side under a server secret: a voter
cannot predict it, and a restart regenerates the same file. Digests served by this process are remembered, and a
variant whose digest was already served is redrawn.
"""
from __future__ import annotations

import hashlib
import hmac
import threading
import time
from pathlib import Path

import numpy as np

from mova_eval import media


def contained(folder: Path, name: str) -> Path | None:
    """``folder / name`` if it is a file that really lies inside ``folder`` (symlinks resolved), else None."""
    root = folder.resolve()
    path = (folder / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def dither(video: np.ndarray, audio: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """±1 LSB uniform noise on every pixel (in place, frame by frame: frames can be large) and TPDF dither of one
    16-bit step on the audio."""
    for t in range(len(video)):
        noise = rng.integers(-1, 2, size=video[t].shape, dtype=np.int16)
        video[t] = np.clip(video[t].astype(np.int16) + noise, 0, 255).astype(np.uint8)
    if audio is not None:
        lsb = 1.0 / 32768.0
        audio = (audio + (rng.uniform(-lsb, lsb, audio.shape) + rng.uniform(-lsb, lsb, audio.shape))
                 ).astype(np.float32)
    return video, audio


def make_variant(src: str | Path, dst: str | Path, seed: bytes | int) -> Path:
    """Decode ``src``, dither it with ``seed``, encode to ``dst`` (same codecs, frame rate, size, sample rate)."""
    clip = media.decode(src)
    rng = np.random.default_rng(int.from_bytes(seed, "big") if isinstance(seed, bytes) else seed)
    video = np.array(clip.video, dtype=np.uint8, copy=True)
    audio = np.asarray(clip.audio, dtype=np.float32) if clip.has_audio else None
    video, audio = dither(video, audio, rng)
    return media.encode(dst, video, clip.fps, audio, clip.sample_rate if audio is not None else None)


class VariantCache:
    """Variant files under ``folder``, one per (battle, side), made on demand and deleted after ``ttl_s``."""

    def __init__(self, folder: Path, secret: str, *, ttl_s: float = 1800.0, sweep_every_s: float = 60.0):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._secret = secret.encode()
        self.ttl_s, self.sweep_every_s = ttl_s, sweep_every_s
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._served: set[str] = set()
        self._last_sweep = 0.0
        self.made = 0
        self.seconds = 0.0  # total time spent making variants (for the cost figure)

    def seed(self, battle_id: str, side: str, attempt: int = 0) -> bytes:
        return hmac.new(self._secret, f"{battle_id}:{side}:{attempt}".encode(), hashlib.sha256).digest()[:16]

    def get(self, battle_id: str, side: str, src: Path) -> Path:
        key = f"{battle_id}-{side}"
        dst = self.folder / f"{key}.mp4"
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            if not dst.is_file():
                t0 = time.perf_counter()
                for attempt in range(4):
                    make_variant(src, dst, self.seed(battle_id, side, attempt))
                    digest = media.file_sha256(dst)
                    with self._lock:
                        if digest not in self._served:
                            self._served.add(digest)
                            break
                with self._lock:
                    self.made += 1
                    self.seconds += time.perf_counter() - t0
        self._sweep()
        return dst

    def _sweep(self) -> None:
        now = time.time()
        with self._lock:
            if now - self._last_sweep < self.sweep_every_s:
                return
            self._last_sweep = now
        for f in self.folder.glob("*.mp4"):
            try:
                if now - f.stat().st_mtime > self.ttl_s:
                    f.unlink()
                    with self._lock:
                        self._key_locks.pop(f.stem, None)
            except OSError:
                pass
