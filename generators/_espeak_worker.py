"""One espeak-ng synthesis in a fresh process (``python -m mova_eval.generators._espeak_worker``).

Why a process per utterance: the espeak-ng library keeps static state across calls (pitch flutter, noise
phase) that neither ``espeak_Terminate`` nor ``espeak_ng_SetRandSeed`` resets, so the same text said twice in
one process differs. A fresh process makes the audio a function of (text, voice, rate, pitch) alone.

Protocol: a JSON request on stdin ``{"text", "voice", "rate", "pitch"}`` (or ``{"info": true}``); on stdout
4 bytes little-endian sample rate followed by int16 little-endian samples (``info``: the version string).
Only the standard library and ``espeakng_loader`` are imported, so start-up stays around 30 ms.
"""
from __future__ import annotations

import ctypes
import json
import sys


def main() -> int:
    import espeakng_loader

    req = json.loads(sys.stdin.buffer.read() or b"{}")
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    sr = lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0)  # 2: AUDIO_OUTPUT_SYNCHRONOUS
    if sr <= 0:
        print(f"espeak_Initialize returned {sr}", file=sys.stderr)
        return 3
    if req.get("info"):
        sys.stdout.write(lib.espeak_Info(None).decode())
        return 0
    pcm = bytearray()
    proto = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    def collect(wav, n, _events):
        if n > 0:
            pcm.extend(ctypes.string_at(wav, 2 * n))
        return 0

    callback = proto(collect)
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(req["voice"].encode()) != 0:
        print(f"espeak-ng has no voice {req['voice']!r}", file=sys.stderr)
        return 4
    for param, value in ((1, req["rate"]), (2, 100), (3, req["pitch"]), (4, 50)):  # RATE, VOLUME, PITCH, RANGE
        lib.espeak_SetParameter(param, int(value), 0)
    data = req["text"].encode("utf-8")
    err = lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 1, None, None)  # POS_CHARACTER, espeakCHARS_UTF8
    lib.espeak_Synchronize()
    if err != 0:
        print(f"espeak_Synth failed with error {err}", file=sys.stderr)
        return 5
    sys.stdout.buffer.write(int(sr).to_bytes(4, "little") + bytes(pcm))
    return 0


if __name__ == "__main__":
    sys.exit(main())
