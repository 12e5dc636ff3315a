"""The CLIP byte-level BPE tokenizer (Radford et al. 2021), as ImageBind's text tower and OpenAI CLIP use it.

Vocabulary: ``bpe_simple_vocab_16e6.txt.gz`` (OpenAI CLIP, MIT): line 0 is a header, the next 48,894 lines are the
merges; the ids are the 256 byte symbols, the same with ``</w>``, one id per merge, then ``<|startoftext|>`` (49406)
and ``<|endoftext|>`` (49407). No model hub is involved: the file is read from a pip package that ships it
(``open-clip-torch``, MIT; located with ``find_spec``, which does not import it — importing open_clip would pull
torchvision) or from the weights folder (registry entry ``clip_bpe_vocab``).

Text clean-up as upstream: ``ftfy.fix_text``, HTML unescaped twice, whitespace collapsed, lower-cased, then the
CLIP pre-tokeniser pattern (contractions, letter runs, single digits, other non-space runs).

Truncation to the 77-token context has two published forms, and which one a number used matters for prompts over
75 tokens: ``"eot"`` — cut to 76 and append end-of-text (OpenAI ``clip.tokenize(truncate=True)``, ImageBind after
commit 1125e1e, open_clip); ``"cut"`` — cut to 77 with no end-of-text (ImageBind before that commit, and the copy
JavisBench vendors), after which ImageBind's head reads ``argmax(ids)``, i.e. whatever token has the largest id.
"""
from __future__ import annotations

import functools
import gzip
import html
import importlib.util
from pathlib import Path

from mova_eval import weights
from mova_eval.context import RunContext
from mova_eval.errors import WeightsMissingError

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
SOT, EOT = 49406, 49407
CONTEXT = 77

weights.register(weights.WeightSpec(
    name="clip_bpe_vocab",
    filename=VOCAB_FILE,
    urls=("https://github.com/openai/CLIP/raw/main/clip/bpe_simple_vocab_16e6.txt.gz",),
    license="MIT (OpenAI CLIP)",
    used_by=("ib_score", "clip_video", "clip_video_viclip"),
    description="CLIP BPE merges (1.3 MB); also shipped inside the open-clip-torch wheel, which is used when present",
))

#: pip packages known to ship the same file (module name, path inside it)
_PACKAGES = (("open_clip", VOCAB_FILE), ("laion_clap", f"clap_module/{VOCAB_FILE}"), ("imagebind", f"bpe/{VOCAB_FILE}"))


def vocab_path(context: RunContext | None = None) -> Path:
    """The vocabulary file: the weights folder first, then a package that ships it; else WeightsMissingError."""
    try:
        return weights.resolve("clip_bpe_vocab", context)
    except WeightsMissingError as missing:
        for module, rel in _PACKAGES:
            try:
                spec = importlib.util.find_spec(module)
            except (ImportError, ValueError):
                continue
            for root in (spec.submodule_search_locations or []) if spec else []:
                p = Path(root) / rel
                if p.is_file():
                    return p
        raise missing


def _byte_symbols() -> dict[int, str]:
    """GPT-2's reversible byte → printable character map, in vocabulary order: the printable Latin-1 bytes first
    (mapped to themselves), then the remaining bytes in byte order, mapped to U+0100 onwards."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    rest = [b for b in range(256) if b not in table]
    table.update({b: chr(256 + i) for i, b in enumerate(rest)})
    return table


class ClipTokenizer:
    def __init__(self, path: str | Path | None = None):
        import regex

        path = Path(path) if path is not None else vocab_path()
        lines = gzip.open(path, "rt", encoding="utf-8").read().split("\n")
        merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
        self.byte_symbols = _byte_symbols()
        symbols = list(self.byte_symbols.values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.ids = {tok: i for i, tok in enumerate(vocab)}
        self.rank = {m: i for i, m in enumerate(merges)}
        self.pattern = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"""
                                     r"""[^\s\p{L}\p{N}]+""", regex.IGNORECASE)
        self._regex = regex
        self._bpe = functools.lru_cache(maxsize=65536)(self._merge)

    def _merge(self, word: str) -> tuple[str, ...]:
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            best, best_rank = None, None
            for pair in zip(parts, parts[1:]):
                r = self.rank.get(pair)
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = pair, r
            if best is None:
                break
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return tuple(parts)

    def clean(self, text: str) -> str:
        import ftfy

        text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
        return self._regex.sub(r"\s+", " ", text).strip().lower()

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for piece in self._regex.findall(self.pattern, self.clean(text)):
            if piece in ("<|startoftext|>", "<|endoftext|>"):
                out.append(self.ids[piece])
                continue
            word = "".join(self.byte_symbols[b] for b in piece.encode("utf-8"))
            out += [self.ids[t] for t in self._bpe(word)]
        return out

    def __call__(self, text: str, truncate: str = "eot", context: int = CONTEXT) -> tuple[list[int], int]:
        """(``context`` ids, zero-padded; number of BPE tokens of the text before truncation)."""
        body = self.encode(text)
        ids = [SOT, *body, EOT]
        if len(ids) > context:
            if truncate == "eot":
                ids = ids[: context - 1] + [EOT]
            elif truncate == "cut":
                ids = ids[:context]
            else:
                raise ValueError(f"truncate must be 'eot' or 'cut', got {truncate!r}")
        return ids + [0] * (context - len(ids)), len(body)


@functools.lru_cache(maxsize=2)
def shared(path: str | None = None) -> ClipTokenizer:
    return ClipTokenizer(path)
