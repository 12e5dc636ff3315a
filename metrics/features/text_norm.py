"""Transcript normalisers shared by WER/CER and cpWER/cpCER, and the speaker-tag parser.

English: Whisper's ``EnglishTextNormalizer`` (the ``whisper-normalizer`` package, a copy of
``openai/whisper whisper/normalizers``): lower-case, bracketed text dropped (so ``[S01]`` tags vanish), fillers
removed, contractions/numbers/spellings standardised, punctuation removed.

Chinese (CER, as MOVA's cpCER ``remove_punct`` does it, generalised): NFKC, every Unicode punctuation and symbol
character and all whitespace deleted, Latin letters lower-cased; scoring is then per character. Optional
traditional→simplified conversion (``t2s=True``) through OpenCC (``pip install opencc``), because Whisper often
writes traditional characters for Mandarin; it is off by default, and when asked for without OpenCC installed it
raises with the install command rather than silently skipping.
"""
from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

from mova_eval.errors import MissingDependencyError

TAG_RE = re.compile(r"\[S(\d+)\]")
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _english():
    try:
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError as e:
        raise MissingDependencyError("Whisper English normaliser", "whisper_normalizer", "speech") from e
    return EnglishTextNormalizer()


@lru_cache(maxsize=1)
def _t2s():
    try:
        import opencc
    except ImportError as e:
        raise MissingDependencyError("traditional→simplified conversion (t2s)", "opencc", "speech (pip install opencc)") from e
    return opencc.OpenCC("t2s")


def normalize_en(text: str) -> str:
    with _lock:  # the normaliser object keeps compiled state; cheap to serialise
        out = _english()(text)
    return " ".join(out.split())


def normalize_zh(text: str, t2s: bool = False) -> str:
    text = unicodedata.normalize("NFKC", TAG_RE.sub(" ", text))
    if t2s:
        text = _t2s().convert(text)
    return "".join(ch for ch in text.lower() if not ch.isspace() and unicodedata.category(ch)[0] not in "PSZ")


#: MOVA's ``speaker_timestamp_utils.remove_punct``: these characters are deleted, then the text is lower-cased
#: (nothing else: ASCII ``;`` ``:`` ``%`` and digits stay and count as characters)
MOVA_SPACES = (" ", "\t", "\r", "\n")
MOVA_PUNCTS = ("!", ",", "?", "、", "。", "！", "，", "；", "？", "：", "「", "」", "︰", "『", "』", "《", "》", ".",
               "-", "|", "(", ")", "[", "]", "{", "}", '"', "'", "…", "·", "—", "～", "【", "】", "〔", "〕", "〈",
               "〉", "﹃", "﹄", "﹁", "﹂", "‘", "’", "“", "”")


def mova_remove_punct(text: str) -> str:
    """MOVA cpCER's normalisation of one speaker's text, for every language (English is then scored per letter,
    spaces removed): the toolkit's space and punctuation list deleted, then lower case."""
    for p in MOVA_SPACES + MOVA_PUNCTS:
        text = text.replace(p, "")
    return text.lower()


def normalize(text: str, language: str, t2s: bool = False) -> str:
    return normalize_zh(text, t2s) if language == "zh" else normalize_en(text)


def strip_tags(text: str) -> str:
    """A multi-speaker reference as one plain line (for plain WER/CER)."""
    return " ".join(TAG_RE.sub(" ", text).split())


def split_speakers(text: str) -> dict[str, str]:
    """``[S01] a [S02] b [S01] c`` → {"S01": "a c", "S02": "b"} (each speaker's turns concatenated in order).
    Text before the first tag, or untagged text, belongs to ``S00``."""
    parts = TAG_RE.split(text)
    out: dict[str, list[str]] = {}
    if parts[0].strip():
        out.setdefault("S00", []).append(parts[0].strip())
    for num, chunk in zip(parts[1::2], parts[2::2]):
        key = f"S{int(num):02d}"
        out.setdefault(key, [])
        if chunk.strip():
            out[key].append(chunk.strip())
    return {k: " ".join(v) for k, v in out.items()}
