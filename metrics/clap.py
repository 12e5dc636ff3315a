"""CLAP text–audio score with LAION-CLAP ``630k-audioset-fusion-best`` (HTSAT-tiny + RoBERTa, feature fusion).

Two registered metrics, one network:

``clap_mova`` — MOVA's number, quirks included (``metrics/audio_is_clap/eval_audio_is_clap.py``): the soundtrack as
mono **32 kHz** samples fed to the 48 kHz model unchanged (an 8 s clip is heard as 5.3 s, sped up ×1.5, then zero
padded), peak-normalised to −1 dBFS (``pyloudnorm.normalize.peak``), int16 round-trip, and the item's full
``prompt`` as text, cut at 77 RoBERTa tokens. Decode (option ``decode``): ``mova`` (default) is the toolkit's own,
the array it also gives IS (:data:`mova_eval.metrics.inception_score.MOVA_PRESET`): ``ffmpeg -i CLIP -f wav -acodec
pcm_s16le -ar 32000 -ac 2`` then ``librosa.load(mono=True)`` — FFmpeg's resampler, a mono source forced to stereo
at −3 dB (×√½) before the channel mean, s16 samples, AAC end padding kept, the whole track (no cut). ``corrected``:
our Clip's track (aligned, padding cut), channel mean, soxr VHQ; its output is ``clap_mova_corrected``. Parity with
the toolkit's ``extract_audio_from_video_memory`` + ``clap_single_score`` (LAION's own CLAP_Module, same seeded
random weights): tests/metrics/test_mova_decode_parity.py.

``clap`` — the model used as intended (and as Verse-Bench's own tool does): mono **48 kHz**, the same peak
normalisation and int16 round-trip, and the item's first non-empty ``audio_prompt`` as text. Items with no audio
prompt (46 of Verse-Bench's 600) do not apply.

Both: LAION's eval path — audio shorter than 10 s (480 000 samples) is repeated ``int(480000/len)`` times and zero
padded; the 64-bin log-mel (torchaudio ``MelSpectrogram`` settings: n_fft/win 1024, hop 480, 50–14 000 Hz, HTK mel
scale, no filter norm, power 2, centred reflect padding; ``AmplitudeToDB`` 10·log10 with amin 1e-10) is stacked 4×
with ``is_longer = False``, so only the global branch runs. Longer audio takes LAION's fusion path: the whole mel
resized to 1001 frames (bilinear, antialiased, as ``torchvision.transforms.Resize`` does on tensors) plus three
1001-frame chunks drawn from the front, middle and back thirds — drawn with ``numpy.random.RandomState(seed)``
(option ``seed``, default 0) so the score is reproducible, where LAION draws unseeded. The score is the cosine of
the L2-normalised projected embeddings; ``all`` is the mean of category means (MOVA).

The network is ``transformers``' ``ClapModel`` (the same HTSAT/RoBERTa graph); the original LAION checkpoint is
converted on load (:func:`convert_laion_state_dict`), and a checkpoint already in ``transformers`` layout loads
as is. Digital silence has no peak to normalise: ``clap_mova`` records NaN with that reason (MOVA's pipeline
divides by zero there), ``clap`` scores the silent track as it is.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from mova_eval import weights
from mova_eval.context import RunContext
from mova_eval.errors import MediaError, MetricUnavailable, NotApplicable, WeightsMissingError
from mova_eval.media import AudioPreset
from mova_eval.metrics.base import CATEGORY_MEAN, Card, ItemScore, Metric, MetricInfo, Output, require_package
from mova_eval.metrics.options import option
from mova_eval.spec import Clip, SuiteItem
from mova_eval.weights import WeightSpec

CKPT = "laion_clap_630k_audioset_fusion"
TOKENIZER_FILES = {"roberta_base_vocab": "vocab.json", "roberta_base_merges": "merges.txt"}

weights.register(WeightSpec(
    name=CKPT,
    filename="630k-audioset-fusion-best.pt",
    urls=("https://huggingface.co/lukewys/laion_clap/resolve/main/630k-audioset-fusion-best.pt",),
    license="CC0-1.0 (LAION-AI/CLAP)",
    used_by=("clap", "clap_mova", "fad_clap"),
    size=None,
    description="LAION-CLAP HTSAT-tiny + RoBERTa, fusion, trained on LAION-Audio-630K + AudioSet (1.86 GB); "
                "contains the fine-tuned RoBERTa text tower",
    # the Git LFS pointer's oid, shown as "Git LFS Details · SHA256" on Hugging Face: read on
    # huggingface.co/lukewys/laion_clap/blob/8281cd0/audioset_fusion_epoch_20_esc_86.8_map_36.22.pt (the same
    # bytes under LAION's training name) and huggingface.co/spaces/nvidia/audio-flamingo-demo/blob/main/
    # 630k-audioset-fusion-best.pt
    sha256="fb171dd9b608aebdac3d89286cd7615c5100af4cc7dc37797c7fb8d3cc15e3a5",
    sha256_source="Hugging Face Git LFS pointer (lukewys/laion_clap, 630k-audioset-fusion-best.pt = "
                  "audioset_fusion_epoch_20_esc_86.8_map_36.22.pt)",
))
# roberta-base's vocab.json (899 kB) and merges.txt (456 kB) are plain git files on Hugging Face, not LFS: no sha256
# is published for them, so they stay trust on first use (`weights list` says so)
for _name, _file in TOKENIZER_FILES.items():
    weights.register(WeightSpec(
        name=_name,
        filename=f"roberta-base/{_file}",
        urls=(f"https://huggingface.co/FacebookAI/roberta-base/resolve/main/{_file}",),
        license="MIT (FacebookAI/roberta-base)",
        used_by=("clap", "clap_mova"),
        description=f"roberta-base tokenizer {_file} (CLAP's text tokenizer; the text weights are in the CLAP file)",
    ))

# LAION HTSAT-tiny audio_cfg
SAMPLE_RATE = 48000
MAX_LEN = 480000
N_FFT = 1024
HOP = 480
N_MELS = 64
FMIN, FMAX = 50.0, 14000.0
CHUNK_FRAMES = MAX_LEN // HOP + 1  # 1001
TEXT_MAX_TOKENS = 77


# ------------------------------------------------------------------------------------------- audio front end
def int16_roundtrip(x: np.ndarray) -> np.ndarray:
    """LAION's ``int16_to_float32(float32_to_int16(x))``: clip to ±1, ×32767, truncate to int16, ÷32767."""
    return ((np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16) / 32767.0).astype(np.float32)


def peak_normalize(x: np.ndarray, target_db: float = -1.0) -> np.ndarray:
    """``pyloudnorm.normalize.peak``: scale so that max |x| is ``target_db`` dBFS (float64, as pyloudnorm returns)."""
    peak = float(np.max(np.abs(x)))
    return np.asarray(x, dtype=np.float64) * (10.0 ** (target_db / 20.0) / peak)


def mel_filterbank_htk(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = FMIN,
                       fmax: float = FMAX) -> np.ndarray:
    """Triangular filters on the HTK mel scale, unnormalised, [n_fft//2+1, n_mels] (torchaudio ``melscale_fbanks``
    with ``mel_scale='htk'``, ``norm=None``)."""
    freqs = np.linspace(0.0, sr // 2, n_fft // 2 + 1)
    m_pts = np.linspace(2595.0 * np.log10(1.0 + fmin / 700.0), 2595.0 * np.log10(1.0 + fmax / 700.0), n_mels + 2)
    f_pts = 700.0 * (10.0 ** (m_pts / 2595.0) - 1.0)
    f_diff = np.diff(f_pts)
    slopes = f_pts[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up)).astype(np.float32)


_FB = None


def log_mel(x, torch):
    """[N] float32 tensor → [T, 64] dB log-mel, T = N // 480 + 1."""
    global _FB
    if _FB is None:
        _FB = torch.from_numpy(mel_filterbank_htk())
    spec = torch.stft(x, n_fft=N_FFT, hop_length=HOP, win_length=N_FFT, window=torch.hann_window(N_FFT),
                      center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    power = spec.real ** 2 + spec.imag ** 2  # [F, T]
    mel = torch.matmul(power.transpose(0, 1), _FB)  # [T, M]
    return 10.0 * torch.log10(torch.clamp(mel, min=1e-10))


def audio_features(x: np.ndarray, rng: np.random.RandomState):
    """LAION ``get_audio_features(..., data_truncating='fusion', data_filling='repeatpad')`` on one waveform:
    (mel_fusion [4, 1001, 64] tensor, longer: bool, how: str)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    n = t.shape[0]
    if n > MAX_LEN:
        mel = log_mel(t, torch)
        total = mel.shape[0]
        if total == CHUNK_FRAMES:  # longer than 10 s by less than one hop
            return torch.stack([mel] * 4), False, "whole (within one hop of 10 s)"
        ranges = np.array_split(list(range(0, total - CHUNK_FRAMES + 1)), 3)
        ranges = [r if len(r) else [0] for r in ranges]
        idx = [int(rng.choice(r)) for r in ranges]
        chunks = [mel[i:i + CHUNK_FRAMES] for i in idx]
        shrink = F.interpolate(mel[None, None], size=(CHUNK_FRAMES, N_MELS), mode="bilinear", align_corners=False,
                               antialias=True)[0, 0]
        return torch.stack([shrink] + chunks), True, f"fusion (chunks at frames {idx})"
    how = "exact 10 s"
    if n < MAX_LEN:
        reps = MAX_LEN // n
        t = F.pad(t.repeat(reps), (0, MAX_LEN - n * reps))
        how = f"repeated {reps}x then zero padded" if reps > 1 else "zero padded"
    mel = log_mel(t, torch)
    return torch.stack([mel] * 4), False, how


# ------------------------------------------------------------------------------------------- checkpoint layout
_DROP = ("audio_branch.spectrogram_extractor.", "audio_branch.logmel_extractor.", "audio_branch.tscam_conv.",
         "audio_branch.head.", "text_transform.", "audio_transform.", "text_branch.embeddings.position_ids")
_BLOCK_RENAMES = (("norm1.", "layernorm_before."), ("norm2.", "layernorm_after."),
                  ("attn.proj.", "attention.output.dense."), ("attn.", "attention.self."),
                  ("mlp.fc1.", "intermediate.dense."), ("mlp.fc2.", "output.dense."))


def convert_laion_state_dict(sd: dict) -> dict:
    """LAION-CLAP checkpoint keys → ``transformers`` ``ClapModel`` keys. Drops what the score never uses (the
    training-time spectrogram buffers, the audio tagging head, the unused ``*_transform`` MLPs) and splits each
    HTSAT ``qkv`` projection into query/key/value."""
    out = {}
    for k, v in sd.items():
        if k.startswith("module."):
            k = k[len("module."):]
        if k.startswith(_DROP) or k.endswith(".attn_mask"):  # shifted-window masks: transformers builds its own
            continue
        if k.startswith("text_branch."):
            out["text_model." + k[len("text_branch."):]] = v
            continue
        m = re.fullmatch(r"(text|audio)_projection\.(0|2)\.(weight|bias)", k)
        if m:
            out[f"{m[1]}_projection.linear{1 if m[2] == '0' else 2}.{m[3]}"] = v
            continue
        if k.startswith("audio_branch."):
            k = "audio_model.audio_encoder." + k[len("audio_branch."):]
            k = k.replace("audio_encoder.bn0.", "audio_encoder.batch_norm.")
            if ".blocks." in k:
                if ".attn.qkv." in k:
                    q, kk, vv = v.chunk(3, dim=0)
                    base, kind = k.split(".attn.qkv.")
                    for name, part in (("query", q), ("key", kk), ("value", vv)):
                        out[f"{base}.attention.self.{name}.{kind}"] = part.clone()
                    continue
                for a, b in _BLOCK_RENAMES:
                    if f".{a}" in k:
                        k = k.replace(f".{a}", f".{b}", 1)
                        break
            out[k] = v
            continue
        out[k] = v  # logit_scale_a / logit_scale_t
    return out


def clap_config():
    """``ClapConfig`` of ``630k-audioset-fusion-best``. RoBERTa's layer-norm eps is roberta-base's 1e-5 (LAION
    builds the text tower from roberta-base's config; ``ClapTextConfig``'s default is 1e-12)."""
    from transformers import ClapConfig

    return ClapConfig(audio_config={"enable_fusion": True, "fusion_type": "aff_2d"},
                      text_config={"layer_norm_eps": 1e-5}, projection_dim=512)


def build_clap_model(state_dict: dict | None = None):
    """A ``ClapModel`` in eval mode, from a LAION or ``transformers`` state dict (None: random weights)."""
    from transformers import ClapModel

    model = ClapModel(clap_config())
    if state_dict is not None:
        sd = state_dict.get("state_dict", state_dict) if isinstance(state_dict, dict) else state_dict
        if not any(k.startswith(("text_model.", "audio_model.")) for k in sd):
            sd = convert_laion_state_dict(sd)
        missing, unexpected = model.load_state_dict(sd, strict=False)
        allowed_missing = {"text_model.embeddings.position_ids", "text_model.embeddings.token_type_ids"}
        missing = [k for k in missing if k not in allowed_missing and not k.endswith("relative_position_index")]
        if missing or unexpected:
            raise ValueError(f"CLAP checkpoint does not fit ClapModel: missing {missing[:8]} "
                             f"(+{max(0, len(missing) - 8)}), unexpected {unexpected[:8]} (+{max(0, len(unexpected) - 8)})")
    return model.eval()


def read_checkpoint(path) -> dict:
    """A LAION ``.pt`` file, a ``transformers`` state dict (``.bin`` / ``.safetensors``), or a folder holding
    ``model.safetensors`` or ``pytorch_model.bin`` (a converted ``ClapModel`` saved with ``save_pretrained``)."""
    import torch

    p = Path(path)
    if p.is_dir():
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (p / name).is_file():
                return read_checkpoint(p / name)
        raise FileNotFoundError(f"{p}: no model.safetensors or pytorch_model.bin in this folder")
    p = str(p)
    if p.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(p)
    return torch.load(p, map_location="cpu", weights_only=True)


# ------------------------------------------------------------------------------------------- the encoder
class ClapEncoder:
    """A loaded CLAP model plus its tokenizer; embeddings are L2-normalised 512-d float32 arrays."""

    def __init__(self, model, tokenizer, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device

    def text_embeddings(self, texts: list[str]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        if self.tokenizer is None:
            raise RuntimeError("this CLAP encoder was loaded for audio embeddings only (load_encoder(text=False))")
        tok = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=TEXT_MAX_TOKENS,
                             return_tensors="pt")
        with torch.inference_mode():
            out = self.model.text_model(input_ids=tok["input_ids"].to(self.device),
                                        attention_mask=tok["attention_mask"].to(self.device))
            emb = F.normalize(self.model.text_projection(out.pooler_output), dim=-1)
        return emb.float().cpu().numpy()

    def audio_embeddings(self, mels, longer) -> np.ndarray:
        """mels: [B, 4, 1001, 64] tensor, longer: [B] bools."""
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            out = self.model.audio_model(input_features=mels.to(self.device),
                                         is_longer=torch.as_tensor(longer, dtype=torch.bool).reshape(-1, 1)
                                         .to(self.device))
            emb = F.normalize(self.model.audio_projection(out.pooler_output), dim=-1)
        return emb.float().cpu().numpy()

    def audio_embedding(self, x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
        """One waveform (already at the rate the model is told it is: 48 kHz) → (embedding [512], how it was fit)."""
        mel, longer, how = audio_features(x, np.random.RandomState(seed))
        return self.audio_embeddings(mel[None], [longer])[0], how


def load_tokenizer(path: str | os.PathLike | None = None, context: RunContext | None = None):
    """roberta-base tokenizer: ``path`` (a folder with vocab.json + merges.txt), else the registry's files, else the
    Hugging Face cache (then the hub, unless ``HF_HUB_OFFLINE``) for ``FacebookAI/roberta-base``.

    A loaded tokenizer must have roberta-base's 50 265 tokens: offline, ``transformers`` can build one with no
    vocabulary without raising, which would silently give every text the same embedding."""
    from transformers import RobertaTokenizer

    fix = "mova-eval weights fetch roberta_base_vocab && mova-eval weights fetch roberta_base_merges"
    if path:
        tok = RobertaTokenizer.from_pretrained(str(path))
    else:
        try:
            folder = weights.resolve("roberta_base_vocab", context).parent
            weights.resolve("roberta_base_merges", context)
            tok = RobertaTokenizer.from_pretrained(str(folder))
        except WeightsMissingError:
            tok = None
            offline = (context if context is not None else RunContext.from_env()).offline
            for local_only in (True,) if offline else (True, False):
                try:
                    tok = RobertaTokenizer.from_pretrained("FacebookAI/roberta-base", local_files_only=local_only)
                    break
                except Exception:
                    continue
            if tok is None:
                raise MetricUnavailable("clap", "the roberta-base tokenizer is neither in the weights folder nor in "
                                                "the Hugging Face cache", fix) from None
    if len(tok) < 50265:
        raise MetricUnavailable("clap", f"the roberta-base tokenizer loaded from {path or 'the cache'} has only "
                                        f"{len(tok)} tokens (files missing?)", fix)
    return tok


_ENCODERS: dict[tuple, ClapEncoder] = {}
_MODELS: dict[tuple, object] = {}
_ENC_LOCK = threading.Lock()


def load_encoder(device: str = "cpu", checkpoint: str | None = None, tokenizer: str | None = None,
                 text: bool = True, context: RunContext | None = None) -> ClapEncoder:
    """The CLAP encoder, loaded once per process; the network is shared by ``clap``, ``clap_mova`` and
    ``fad_clap``. ``text=False`` (audio embeddings only, as FAD needs) loads no tokenizer."""
    path = Path(checkpoint) if checkpoint else weights.resolve(CKPT, context)
    key = (str(path), str(tokenizer) if text else None, str(device))
    with _ENC_LOCK:
        if key not in _ENCODERS:
            tok = load_tokenizer(tokenizer, context) if text else None
            mkey = (str(path), str(device))
            if mkey not in _MODELS:
                _MODELS[mkey] = build_clap_model(read_checkpoint(path))
            _ENCODERS[key] = ClapEncoder(_MODELS[mkey], tok, device)
        return _ENCODERS[key]


# ------------------------------------------------------------------------------------------- the metrics
@dataclass(frozen=True)
class ClapOptions:
    """``metrics.options.clap.*`` / ``clap_mova.*``."""

    seed: int = option(0, help="seed of the random 10 s crop of longer clips")
    checkpoint: str | None = option(None, help="a CLAP checkpoint file instead of the registry's")
    tokenizer: str | None = option(None, help="a roberta-base tokenizer folder instead of the default")


@dataclass(frozen=True)
class ClapMovaOptions(ClapOptions):
    """``metrics.options.clap_mova.*``."""

    decode: Literal["mova", "corrected"] = option("mova", protocol=True, help="mova: the toolkit's ffmpeg 32 kHz stereo s16 decode; "
                                                              "corrected: our soxr decode (output clap_mova_corrected)")


class ClapScore(Metric):
    Options = ClapOptions
    """``clap``: 48 kHz audio and the audio prompt (LAION-CLAP as intended)."""

    info = MetricInfo(
        name="clap",
        outputs=(Output("clap", "higher", "cosine", "cosine(CLAP audio, CLAP audio-prompt text), 48 kHz input"),),
        description="LAION-CLAP fusion text–audio cosine similarity, audio at 48 kHz, text = audio prompt",
        needs=frozenset({"audio", "text"}),
        extra="audio",
        packages=("torch", "transformers"),
        weights=(CKPT,),
        aggregation=CATEGORY_MEAN,
        version="1",
        reference="LAION-AI/CLAP CLAP_Module(enable_fusion=True).get_audio_embedding_from_data / get_text_embedding; "
                  "Verse-Bench tool text choice",
        card=Card(
            ranges=(
                ('clap', '[-1, 1] (cosine)'),
            ),
            scale='×1 (cosine)',
            tables=(
                'none with this exact model and input: the MOVA number is clap_mova',
            ),
            docs='docs/metrics/clap.md',
        ),
    )
    #: rate the soundtrack is resampled to before being handed to the 48 kHz model
    input_rate = SAMPLE_RATE
    silence = "score"
    decode = "corrected"

    def __init__(self, options=None, device="cpu", context=None):
        super().__init__(options, device, context)
        self.seed = self.opts.seed
        self._enc: ClapEncoder | None = None
        self._text_cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        require_package(self.info.name, "torch", "audio")
        require_package(self.info.name, "transformers", "audio")
        import transformers  # noqa: F401  (before anything could install a torchvision stand-in)

        self._enc = load_encoder(self.device, self.opts.checkpoint, self.opts.tokenizer, context=self.context)

    def text_for(self, item: SuiteItem) -> str:
        for a in item.audio_prompts:
            if a.strip():
                return a
        raise NotApplicable(f"item {item.id} has no audio prompt")

    def applies(self, item: SuiteItem) -> bool:
        return super().applies(item) and any(a.strip() for a in item.audio_prompts)

    def _text_embedding(self, text: str) -> np.ndarray:
        with self._lock:
            hit = self._text_cache.get(text)
        if hit is None:
            hit = self._enc.text_embeddings([text])[0]
            with self._lock:
                self._text_cache[text] = hit
        return hit

    def audio_preset(self) -> AudioPreset:
        """How the soundtrack is decoded before the peak normalisation (here: our track, soxr, channel mean)."""
        return AudioPreset(self.input_rate, mono=True, name=f"clap{self.input_rate // 1000}k")

    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        if self._enc is None:
            self.load()
        text = self.text_for(item)
        x = clip.audio_for(self.audio_preset())
        if x.shape[-1] == 0:
            raise MediaError(clip.path, "audio track has no samples")
        details = {"text": text, "input_rate": self.input_rate, "seconds_as_heard": x.shape[-1] / SAMPLE_RATE,
                   "decode": self.decode}
        if float(np.max(np.abs(x))) == 0.0:
            if self.silence == "nan":
                return ItemScore({self.info.outputs[0].name: math.nan}, details,
                                 {self.info.outputs[0].name: "audio is digital silence: MOVA's peak normalisation "
                                                             "divides by a zero peak (no defined score)"})
            details["silent"] = True
            x = np.zeros_like(x)
        else:
            x = peak_normalize(x, -1.0)
        a, how = self._enc.audio_embedding(int16_roundtrip(x), self.seed)
        t = self._text_embedding(text)
        cos = float(np.dot(a, t) / max(float(np.linalg.norm(a) * np.linalg.norm(t)), 1e-8))
        details["fit"] = how
        return ItemScore({self.info.outputs[0].name: cos}, details)


_CLAP_MOVA_CORRECTED = Output("clap_mova_corrected", "higher", "cosine",
                              "clap_mova on our corrected decode (soxr, channel mean), not the toolkit's ffmpeg decode")


class ClapMova(ClapScore):
    """``clap_mova``: MOVA's quirks — its ffmpeg decode, 32 kHz samples into the 48 kHz model, full prompt as text."""

    Options = ClapMovaOptions
    info = MetricInfo(
        name="clap_mova",
        outputs=(Output("clap_mova", "higher", "cosine",
                        "MOVA's CLAP score: 32 kHz audio read as 48 kHz, text = full prompt (77 tokens)"),),
        variant_outputs=(_CLAP_MOVA_CORRECTED,),
        description="LAION-CLAP fusion cosine computed as the MOVA toolkit does (comparable with its tables)",
        needs=frozenset({"audio", "text"}),
        extra="audio",
        packages=("torch", "transformers"),
        weights=(CKPT,),
        aggregation=CATEGORY_MEAN,
        version="2",
        reference="OpenMOSS/MOVA evaluation/metrics/audio_is_clap/eval_audio_is_clap.py (extract_audio_from_video_"
                  "memory, clap_single_score)",
        card=Card(
            ranges=(
                ('clap_mova', '[-1, 1] (cosine)'),
                ('clap_mova_corrected', '[-1, 1] (cosine)'),
            ),
            scale='×1 (cosine)',
            tables=(
                "none located: MOVA's evaluation README lists it as a 'paper score' but it is not in Table 4 (MOVA "
                "toolkit variant: 32 kHz input, set1+2+3)",
            ),
            reference_values=(
                'MOVA-360p 0.268 (MOVA evaluation README; the toolkit reproduces it)',
            ),
            docs='docs/metrics/clap.md',
        ),
    )
    input_rate = 32000
    silence = "nan"

    def __init__(self, options=None, device="cpu", context=None):
        super().__init__(options, device, context)
        self.decode = self.opts.decode
        if self.decode == "corrected":  # its own output name: two decodes never share one
            self.info = dataclasses.replace(type(self).info, outputs=(_CLAP_MOVA_CORRECTED,))

    def audio_preset(self) -> AudioPreset:
        if self.decode == "mova":
            from mova_eval.metrics.inception_score import MOVA_PRESET

            return MOVA_PRESET
        return super().audio_preset()

    def text_for(self, item: SuiteItem) -> str:
        return item.prompt

    def applies(self, item: SuiteItem) -> bool:
        return Metric.applies(self, item) and bool(item.prompt.strip())
