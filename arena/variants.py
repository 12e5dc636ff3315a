"""Per-battle variants of the playback copies: different bytes in every battle, the same thing to judge.

Without them every battle serves the same file for a clip, so a voter who hashes what they download learns which
model made a clip from an earlier reveal, and recognises a gold twin (it has the bytes of a clip seen before). A
variant is the playback copy decoded and re-encoded (``mova_eval.media``: the one door to containers) after an
imperceptible dither drawn from a per-battle seed: every pixel moves by −1, 0 or +1 (of 255) and the sound gets
TPDF dither of one 16-bit step (≈ −98 dBFS). Changing any input value changes the H.264 and AAC bitstreams, so
neither the file nor its packets nor its decoded frames repeat across battles. ``benchmarks/arena_variants.py``
measures what it costs and that it moves no judged quantity beyond its noise (integrated loudness, frame PSNR
against the playback copy next to the PSNR of a plain re-encode).

A battle side gets its variant on its first media request (not when the battle is issued, so voting
throughput does not pay for it), kept for the battle token's lifetime (a browser fetches ranges of the same file
several times) and then deleted. A small stock of ready variants per clip, made in the background, spares the
voter the wait (see ``VariantCache``). Seeds are random; digests served by this process are remembered, and a
variant whose digest was already served is redrawn.

Sizes: a re-encoded variant's size stays close to its clip's (within about 1 %, while clips of one frame size
differ by a few %), so a voter who writes down the sizes of revealed battles could still link a later variant to
its clip. Every variant is therefore padded (``media.pad_mp4``: one trailing ``free`` box of random bytes, which no
decoder reads) to one size shared by all clips of its *visible class* — same frame size, frame rate and duration,
the properties a voter sees anyway: ``pad_targets`` sets it to the largest playback copy of the class times a
headroom (default 1.5, ``--variant-pad``), rounded up to 4 KiB. Within a class the size then carries no
information at all. A variant that comes out larger than its target (the dither inflated it more than the headroom
allows) is padded to the next step of ×1.25 above the target, logged and counted (``oversize``): such a variant is
distinguishable by size, so the headroom should be raised if the count grows.
"""
from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from mova_eval import media

log = logging.getLogger(__name__)
SERVED_MEMORY = 200_000  # digests remembered (a redraw guard; dithered variants do not collide in practice)


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


#: a visible class: (width, height, fps, duration) — what a voter sees without hashing anything
VisibleClass = tuple[int, int, float, float]
PAD_STEP = 1.25


def pad_targets(clips: dict[Path, VisibleClass], headroom: float = 1.5, align: int = 4096) -> dict[Path, int]:
    """The padded size of each playback copy's variants: the largest copy of its visible class × ``headroom``,
    rounded up to ``align`` bytes (an empty dict when ``headroom`` is 0: no padding). Copies that are missing are
    left out."""
    if headroom <= 0:
        return {}
    sizes = {p: p.stat().st_size for p in clips if p.is_file()}
    biggest: dict[VisibleClass, int] = {}
    for p, n in sizes.items():
        biggest[clips[p]] = max(biggest.get(clips[p], 0), n)
    return {p: -(-int(biggest[clips[p]] * headroom) // align) * align for p in sizes}


def make_variant(src: str | Path, dst: str | Path, seed: bytes | int) -> Path:
    """Decode ``src``, dither it with ``seed``, encode to ``dst`` (same codecs, frame rate, size, sample rate)."""
    clip = media.decode(src)
    rng = np.random.default_rng(int.from_bytes(seed, "big") if isinstance(seed, bytes) else seed)
    video = np.array(clip.video, dtype=np.uint8, copy=True)
    audio = np.asarray(clip.audio, dtype=np.float32) if clip.has_audio else None
    video, audio = dither(video, audio, rng)
    return media.encode(dst, video, clip.fps, audio, clip.sample_rate if audio is not None else None)


class VariantCache:
    """Variant files under ``folder``: one per (battle, side), kept for ``ttl_s`` and then deleted.

    Making a variant takes seconds for a large clip (see the benchmark), so a small stock of ready variants is kept
    per clip (``stock`` each, made by one background thread, refilled after each use): a battle side takes a ready
    one when there is one (no wait), else makes its own. Each stocked variant is handed out once. Seeds are random
    (``secrets``), so nobody can predict a variant's bytes.
    """

    def __init__(self, folder: Path, *, ttl_s: float = 1800.0, sweep_every_s: float = 60.0, stock: int = 1,
                 targets: dict[Path, int] | None = None):
        self.folder = Path(folder)
        self.targets: dict[Path, int] = dict(targets or {})  # source → padded variant size (``pad_targets``)
        self.oversize = 0  # variants larger than their class's target (padded to a higher step instead)
        self.padded_bytes = 0  # bytes of padding written (the bandwidth cost)
        (self.folder / "stock").mkdir(parents=True, exist_ok=True)
        self.ttl_s, self.sweep_every_s, self.stock = ttl_s, sweep_every_s, stock
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._ready: dict[Path, list[Path]] = {}     # source → stocked variants
        self._pending: set[Path] = set()
        self._served: set[str] = set()
        self._served_order: deque[str] = deque()
        self._last_sweep = 0.0
        self._queue: queue.Queue = queue.Queue()
        self.made = 0
        self.seconds = 0.0  # total time spent making variants (for the cost figure)
        for old in (self.folder / "stock").glob("*.mp4"):  # stock of an earlier process: unknown source, drop it
            old.unlink(missing_ok=True)
        if stock:
            threading.Thread(target=self._refill_loop, name="arena-variants", daemon=True).start()

    def make(self, src: Path, dst: Path) -> int:
        """Make one variant of ``src`` at ``dst`` (a fresh random seed; redrawn if its digest was served before),
        padded to ``src``'s target size when it has one. Returns the variant's size before padding."""
        t0 = time.perf_counter()
        natural = 0
        for _ in range(4):
            make_variant(src, dst, secrets.token_bytes(16))
            natural = dst.stat().st_size
            self._pad(src, dst, natural)
            digest = media.file_sha256(dst)
            with self._lock:
                if digest not in self._served:
                    self._served.add(digest)
                    self._served_order.append(digest)
                    if len(self._served_order) > SERVED_MEMORY:
                        self._served.discard(self._served_order.popleft())
                    break
        with self._lock:
            self.made += 1
            self.seconds += time.perf_counter() - t0
        return natural

    def _pad(self, src: Path, dst: Path, natural: int) -> None:
        target = self.targets.get(src)
        if target is None:
            return
        size = target
        while size - natural < media.FREE_BOX_HEADER:
            size = int(size * PAD_STEP)
        if size != target:
            with self._lock:
                self.oversize += 1
            log.warning("a variant of %s is %d bytes, over its class's padded size %d: padded to %d instead (raise "
                        "--variant-pad)", src.name, natural, target, size)
        added = media.pad_mp4(dst, size, secrets.token_bytes(size - natural))
        with self._lock:
            self.padded_bytes += added

    def prepare(self, src: Path) -> None:
        """Ask the background thread to stock variants of ``src`` (e.g. when a battle showing it is issued)."""
        if not self.stock:
            return
        with self._lock:
            if src in self._pending or len(self._ready.get(src, [])) >= self.stock:
                return
            self._pending.add(src)
        self._queue.put(src)

    def _refill_loop(self) -> None:
        while True:
            src = self._queue.get()
            try:
                while True:
                    with self._lock:
                        if len(self._ready.get(src, [])) >= self.stock:
                            break
                    dst = self.folder / "stock" / f"{secrets.token_hex(16)}.mp4"
                    self.make(src, dst)
                    with self._lock:
                        self._ready.setdefault(src, []).append(dst)
            except Exception as e:  # noqa: BLE001 - the media request makes it again and reports the error
                log.warning("could not stock a variant of %s: %s", src, e)
            finally:
                with self._lock:
                    self._pending.discard(src)

    def get(self, battle_id: str, side: str, src: Path) -> Path:
        key = f"{battle_id}-{side}"
        dst = self.folder / f"{key}.mp4"
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            if not dst.is_file():
                with self._lock:
                    ready = self._ready.get(src) or []
                    stocked = ready.pop(0) if ready else None
                if stocked is not None:
                    stocked.replace(dst)
                else:
                    self.make(src, dst)
        self.prepare(src)
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
