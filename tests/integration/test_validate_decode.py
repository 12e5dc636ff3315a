"""`mova-eval validate --decode` (issue 15 item 3): files only a decode finds, each reported per file, no crash."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from mova_eval import media
from mova_eval.cli import main

SR = 16_000


def _zero_packets(path):
    """An mp4 whose header declares a video and an audio stream and that holds no packet at all."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=12)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        a = out.add_stream("aac", rate=SR)
        a.layout = "mono"
        out.start_encoding()
    return path


def _mkv(path, *, size=(32, 32), frames=6, audio=None, audio_codec="pcm_s16le", layout="mono"):
    """A Matroska clip written stream by stream (audio: float [C, N], written packed)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="matroska") as out:
        v = out.add_stream("libx264rgb", rate=12)
        v.width, v.height, v.pix_fmt, v.options = size[1], size[0], "rgb24", {"qp": "0"}
        a = None
        if audio is not None:
            a = out.add_stream(audio_codec, rate=SR)
            a.layout = layout
        rng = np.random.default_rng(0)
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8), format="rgb24")
            f.pts = i
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        if a is not None:
            fmt = "flt" if audio_codec == "pcm_f32le" else "s16"
            for start in range(0, audio.shape[1], 1024):
                block = audio[:, start:start + 1024].T.reshape(1, -1)
                data = block.astype(np.float32) if fmt == "flt" else (block * 32767).astype(np.int16)
                f = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=layout)
                f.sample_rate, f.pts, f.time_base = SR, start, Fraction(1, SR)
                for p in a.encode(f):
                    out.mux(p)
            for p in a.encode(None):
                out.mux(p)
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "clips"
    rng = np.random.default_rng(1)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(SR // 2) / SR)).astype(np.float32)[None]
    name = {i: root / c / f"{i}_video_step1_seed0.mkv" for c, i in [
        ("speech_en", "smoke_en_01"), ("speech_en", "smoke_en_02"), ("speech_zh", "smoke_zh_01"),
        ("speech_zh", "smoke_zh_02"), ("dialogue", "smoke_dialogue_01"), ("sfx", "smoke_sfx_01"),
        ("sfx", "smoke_sfx_02")]}
    _mkv(name["smoke_en_01"], audio=tone)                                               # good
    good = media.encode(root / "tmp.mp4", rng.integers(0, 255, (48, 64, 64, 3), dtype=np.uint8), 24,
                        (0.3 * rng.standard_normal((1, 2 * SR))).astype(np.float32), SR)
    data = bytearray(good.read_bytes())
    good.unlink()
    n = len(data)
    data[n // 2:n // 2 + 4000] = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()  # corrupt middle
    corrupt = name["smoke_en_02"].with_suffix(".mp4")
    corrupt.parent.mkdir(parents=True, exist_ok=True)
    corrupt.write_bytes(bytes(data))
    _mkv(name["smoke_zh_01"], size=(1, 1), audio=tone)                                  # 1x1
    zero = _zero_packets(name["smoke_zh_02"].with_suffix(".mp4"))                      # zero packets
    nan = tone.copy()
    nan[0, 100:110] = np.nan
    _mkv(name["smoke_dialogue_01"], audio=nan, audio_codec="pcm_f32le")                 # NaN samples
    many = np.repeat(tone, 8, axis=0) * np.linspace(0.2, 1, 8, dtype=np.float32)[:, None]
    _mkv(name["smoke_sfx_01"], audio=many, layout="7.1")                                # 8 channels
    _mkv(name["smoke_sfx_02"], audio=np.clip(3 * tone / 0.3 * 0.9, -1, 1))              # clipped
    return root, {**name, "smoke_en_02": corrupt, "smoke_zh_02": zero}


def _lines(out: str, path) -> list[str]:
    return [ln for ln in out.splitlines() if str(path) in ln]


def test_validate_decodes_by_default_and_reports_each_file(folder, capsys):
    root, name = folder
    rc = main(["validate", "suite=smoke", "generator=directory", f"generator.path={root}"])
    out = capsys.readouterr().out
    assert rc == 1
    assert not _lines(out, name["smoke_en_01"])
    assert any("decoding as a run would fails" in ln and "truncated or corrupt" in ln
               for ln in _lines(out, name["smoke_en_02"])), out
    assert any("frame size 1x1" in ln for ln in _lines(out, name["smoke_zh_01"])), out
    assert any("bad file" in ln and "decoding as a run would fails" in ln
               for ln in _lines(out, name["smoke_zh_02"])), out
    assert any("NaN" in ln for ln in _lines(out, name["smoke_dialogue_01"])), out
    assert any("note:" in ln and "8 channels" in ln for ln in _lines(out, name["smoke_sfx_01"])), out
    assert not any("bad file" in ln for ln in _lines(out, name["smoke_sfx_01"])), out
    assert any("note:" in ln and "clipped audio" in ln for ln in _lines(out, name["smoke_sfx_02"])), out


def test_no_decode_reads_only_headers(folder, capsys):
    root, name = folder
    main(["validate", "suite=smoke", "generator=directory", f"generator.path={root}", "--no-decode"])
    out = capsys.readouterr().out
    assert "decoding as a run would" not in out and "note:" not in out
    assert not any("NaN" in ln for ln in _lines(out, name["smoke_dialogue_01"]))  # only a decode finds it


def test_large_folders_skip_the_decode_unless_asked(folder, capsys, monkeypatch):
    import mova_eval.generators.directory as directory

    root, name = folder
    monkeypatch.setattr(directory, "DECODE_CHECK_MAX_FILES", 3)  # this folder holds 7 clips: "large"
    main(["validate", "suite=smoke", "generator=directory", f"generator.path={root}"])
    assert "decoding as a run would" not in capsys.readouterr().out
    main(["validate", "suite=smoke", "generator=directory", f"generator.path={root}", "--decode"])
    assert any("NaN" in ln for ln in _lines(capsys.readouterr().out, name["smoke_dialogue_01"]))
