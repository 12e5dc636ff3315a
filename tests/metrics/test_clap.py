"""CLAP: our transformers-based encoder against LAION-CLAP's own ``CLAP_Module`` with the same seeded random
weights, loaded through the original checkpoint layout; plus the front end and the two metrics' input handling."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")  # imported before any torchvision stand-in (environment.md §3)

from mova_eval.metrics import clap  # noqa: E402
from mova_eval.spec import Clip, SuiteItem  # noqa: E402

TEXTS = ["The sound of chalk writing.", "A dog barks twice while rain falls on a tin roof, and a car passes by. " * 6,
         "silence"]


def _laion_module(tokenizer_dir):
    """Build laion_clap's CLAP_Module offline: torchvision stub and torchaudio stand-in only while it imports and
    builds (removed again so other tests never see them), tokenizer files from ../shared, a random RoBERTa."""
    import importlib.util

    if "laion_clap" not in sys.modules and importlib.util.find_spec("laion_clap") is None:
        pytest.skip("laion-clap is not installed (requirements/test-nodeps.txt)")
    import torch.nn.functional as F
    from transformers import BartTokenizer, BertTokenizer, RobertaConfig, RobertaModel, RobertaTokenizer

    from tests.stubs import torchaudio_standin, torchvision_stub

    class Resize:  # torchvision.transforms.Resize on a tensor (bilinear, antialias=True), used for >10 s audio
        def __init__(self, size):
            self.size = size

        def __call__(self, x):
            return F.interpolate(x[None], size=self.size, mode="bilinear", align_corners=False, antialias=True)[0]

    rt = RobertaTokenizer.from_pretrained(str(tokenizer_dir))
    with pytest.MonkeyPatch.context() as mp:
        # bert / bart tokenizers are built at laion import but unused at inference (and may be the same class as
        # RobertaTokenizer in transformers 5): every one of them gets the roberta-base files
        for cls_ in (BertTokenizer, BartTokenizer, RobertaTokenizer):
            mp.setattr(cls_, "from_pretrained", classmethod(lambda cls, *a, **k: rt))
        mp.setattr(RobertaModel, "from_pretrained", classmethod(lambda cls, *a, **k: RobertaModel(RobertaConfig(
            vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5))))
        torchvision_stub.install()
        torchaudio_standin.install()
        try:
            import laion_clap

            data = sys.modules["laion_clap.training.data"]
            data.torchvision.transforms.Resize = Resize
            torch.manual_seed(0)
            ref = laion_clap.CLAP_Module(enable_fusion=True, device="cpu")
        finally:
            torchvision_stub.uninstall()
            torchaudio_standin.uninstall()
    return ref


@pytest.fixture(scope="module")
def models(tmp_path_factory, request):
    from tests.conftest import shared_path

    tok_dir = shared_path("tokenizers", "roberta-base")
    ref = _laion_module(tok_dir)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so the conversion of every BN buffer is tested
        for m in ref.model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    ref.model.eval()
    # the original checkpoint layout: {"state_dict": {"module.<key>": tensor}}
    path = tmp_path_factory.mktemp("clap") / "630k-audioset-fusion-best.pt"
    torch.save({"epoch": 45, "state_dict": {"module." + k: v for k, v in ref.model.state_dict().items()}}, path)
    enc = clap.ClapEncoder(clap.build_clap_model(clap.read_checkpoint(path)), clap.load_tokenizer(tok_dir))
    return ref, enc, path


def test_text_embeddings_match_laion(models):
    ref, enc, _ = models
    with torch.no_grad():
        want = ref.get_text_embedding(TEXTS)
    got = enc.text_embeddings(TEXTS)
    assert got.shape == (3, 512)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(got[0] - got[1]).max() > 1e-3  # different texts give different embeddings


def test_audio_embeddings_match_laion_up_to_10s(models):
    """1.3 s (repeated 7× then padded), 6 s (zero padded only) and exactly 10 s, in one batch each side."""
    ref, enc, _ = models
    xs = []
    for seconds in (1.3, 6.0, 10.0):
        rng = np.random.default_rng(int(seconds * 10))
        n = int(seconds * 48000)
        t = np.arange(n) / 48000
        x = (0.4 * np.sin(2 * np.pi * 523 * t) * np.exp(-t) + 0.1 * rng.standard_normal(n)).astype(np.float32)
        xs.append(clap.int16_roundtrip(x))
    with torch.no_grad():
        want = ref.get_audio_embedding_from_data(xs, use_tensor=False)  # it does its own int16 round-trip
    feats = [clap.audio_features(x, np.random.RandomState(0)) for x in xs]
    assert [f[2] for f in feats] == ["repeated 7x then zero padded", "zero padded", "exact 10 s"]
    got = enc.audio_embeddings(torch.stack([f[0] for f in feats]), [f[1] for f in feats])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_audio_embedding_fusion_path_matches_laion(models):
    """> 10 s: global mel resized to 1001 frames + three chunks chosen with the same random draws."""
    ref, enc, _ = models
    rng = np.random.default_rng(1)
    n = int(13.7 * 48000)
    x = clap.int16_roundtrip((0.3 * rng.standard_normal(n) * np.linspace(0, 1, n)).astype(np.float32))
    np.random.seed(5)
    with torch.no_grad():
        want = ref.get_audio_embedding_from_data(x[None], use_tensor=False)
    got, how = enc.audio_embedding(x, seed=5)
    assert how.startswith("fusion")
    np.testing.assert_allclose(got, want[0], atol=1e-5)


def test_log_mel_matches_librosa():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal(48000)).astype(np.float32)
    ours = clap.log_mel(torch.from_numpy(x), torch).numpy()
    ref = librosa.power_to_db(librosa.feature.melspectrogram(
        y=x.astype(np.float64), sr=48000, n_fft=1024, hop_length=480, win_length=1024, center=True, pad_mode="reflect",
        power=2.0, n_mels=64, fmin=50, fmax=14000, htk=True, norm=None), ref=1.0, amin=1e-10, top_db=None).T
    assert ours.shape == (101, 64)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_conversion_is_complete(models):
    ref, enc, _ = models
    conv = clap.convert_laion_state_dict({"module." + k: v for k, v in ref.model.state_dict().items()})
    target = enc.model.state_dict()
    assert set(conv) - set(target) == set()
    assert {k for k in set(target) - set(conv)} <= {"text_model.embeddings.position_ids",
                                                       "text_model.embeddings.token_type_ids"}
    for k, v in conv.items():
        assert tuple(v.shape) == tuple(target[k].shape), k


# ------------------------------------------------------------------------------------------ the metrics
def _clip(x, sr, name="c.wav"):
    a = np.asarray(x, dtype=np.float32)[None]
    return Clip(path=name, content_hash=name, video=None, fps=None, audio=a, sample_rate=sr, duration=a.shape[-1] / sr)


ITEM = SuiteItem(id="a", category="set1", prompt="A woman writes on a chalkboard. " * 20,
                 audio_prompts=("", "The sound of chalk writing."))


@pytest.fixture
def metrics_with(models, monkeypatch):
    ref, enc, _ = models
    monkeypatch.setattr(clap, "load_encoder", lambda *a, **k: enc)
    out = {}
    # in-memory clips have no file for the toolkit's ffmpeg decode: clap_mova runs on the corrected decode here
    # (its own output name); the default decode is tested on a real file below and against the toolkit in
    # test_mova_decode_parity.py
    for cls, opts in ((clap.ClapScore, {}), (clap.ClapMova, {"decode": "corrected"})):
        m = cls(opts)
        m.load()
        out[cls.info.name] = m
    return out, enc, ref


def test_modes_choose_rate_and_text(metrics_with):
    ms, enc, ref = metrics_with
    sr = 44100
    t = np.arange(int(sr * 8)) / sr
    x = 0.2 * np.sin(2 * np.pi * 330 * t)
    clip = _clip(x, sr)
    s48 = ms["clap"].score(clip, ITEM)
    s32 = ms["clap_mova"].score(clip, ITEM)
    assert set(s32.values) == {"clap_mova_corrected"} and s32.details["decode"] == "corrected"
    assert s48.details["text"] == "The sound of chalk writing." and s48.details["input_rate"] == 48000
    assert s32.details["text"] == ITEM.prompt and s32.details["input_rate"] == 32000
    assert s32.details["seconds_as_heard"] == pytest.approx(8 * 32000 / 48000, abs=1e-3)
    # clap_mova through the reference packages: the 32 kHz samples peak-normalised to −1 dBFS by pyloudnorm, handed
    # to LAION's CLAP_Module as if 48 kHz (it does the int16 round trip itself), the full prompt as text (LAION's
    # tokenizer cuts it at 77 tokens); the cosine of the two normalised embeddings
    pyln = pytest.importorskip("pyloudnorm")
    from mova_eval.media import AudioPreset

    y = pyln.normalize.peak(clip.audio_for(AudioPreset(32000, mono=True)), -1.0)
    with torch.no_grad():
        a = ref.get_audio_embedding_from_data(np.asarray(y, np.float64)[None], use_tensor=False)[0]
        t = ref.get_text_embedding([ITEM.prompt])[0]
    want = float(np.dot(a, t) / (np.linalg.norm(a) * np.linalg.norm(t)))
    assert s32.values["clap_mova_corrected"] == pytest.approx(want, abs=1e-5)
    assert s48.values["clap"] != pytest.approx(s32.values["clap_mova_corrected"], abs=1e-4)
    assert len(enc.tokenizer(ITEM.prompt)["input_ids"]) > 77  # the prompt really is truncated


def test_silence_and_applicability(metrics_with):
    ms, _, _ = metrics_with
    silent = _clip(np.zeros(48000 * 2), 48000, "silent")
    s = ms["clap_mova"].score(silent, ITEM)
    assert math.isnan(s.values["clap_mova_corrected"]) and "silence" in s.errors["clap_mova_corrected"]
    s2 = ms["clap"].score(silent, ITEM)
    assert math.isfinite(s2.values["clap"]) and s2.details["silent"]
    no_audio_prompt = SuiteItem(id="b", category="set1", prompt="x", audio_prompts=("",))
    assert not ms["clap"].applies(no_audio_prompt) and ms["clap_mova"].applies(no_audio_prompt)


def test_clap_mova_default_decode_is_the_toolkits(models, monkeypatch, tmp_path):
    """Default ``decode: mova``: the file read again as ffmpeg -ar 32000 -ac 2 s16 writes it, then the channel mean
    (a mono source comes out ×√½, AAC padding kept); the output is ``clap_mova``, never the corrected one's name."""
    from mova_eval import media
    from mova_eval.metrics.inception_score import MOVA_PRESET

    ref, enc, _ = models
    monkeypatch.setattr(clap, "load_encoder", lambda *a, **k: enc)
    t = np.arange(44100 * 3) / 44100
    x = (0.3 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 2 * t))).astype(np.float32)
    path = media.encode(tmp_path / "mono.mp4", np.zeros((72, 16, 16, 3), np.uint8), 24, x, 44100)
    clip = media.decode(path)
    m = clap.ClapMova({})
    m.load()
    s = m.score(clip, ITEM)
    assert set(s.values) == {"clap_mova"} and s.details["decode"] == "mova"
    want_audio = media.ffmpeg_audio(path, 32000, 2, "s16").mean(axis=0)
    np.testing.assert_array_equal(clip.audio_for(MOVA_PRESET), want_audio)
    # the expected value through the reference packages, not the metric's own helpers: pyloudnorm's peak
    # normalisation to −1 dBFS, LAION's CLAP_Module (its own int16 round trip and embeddings), the cosine
    pyln = pytest.importorskip("pyloudnorm")
    y = pyln.normalize.peak(want_audio, -1.0)
    with torch.no_grad():
        a = ref.get_audio_embedding_from_data(np.asarray(y, np.float64)[None], use_tensor=False)[0]
        t = ref.get_text_embedding([ITEM.prompt])[0]
    want = float(np.dot(a, t) / (np.linalg.norm(a) * np.linalg.norm(t)))
    assert s.values["clap_mova"] == pytest.approx(want, abs=1e-5)
    # the two decodes differ: level (mono forced to stereo at −3 dB), length (AAC padding kept) and resampler
    corrected = clip.audio_for(media.AudioPreset(32000, mono=True))
    assert len(want_audio) > len(corrected)
    assert np.max(np.abs(want_audio)) == pytest.approx(np.max(np.abs(corrected)) * np.sqrt(0.5), rel=0.02)
    with pytest.raises(Exception, match="clap_mova.decode"):
        clap.ClapMova({"decode": "ffmpeg"})


def test_weights_missing_reports_fetch_command(monkeypatch, tmp_path):
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path))
    av = clap.ClapScore.availability()
    assert not av.ok and av.command == f"mova-eval weights fetch {clap.CKPT}"


def test_peak_and_int16_match_pyloudnorm_and_laion(models):
    pyln = pytest.importorskip("pyloudnorm")
    data = sys.modules["laion_clap.training.data"]
    rng = np.random.default_rng(4)
    x = (0.3 * rng.standard_normal(20000)).astype(np.float32)
    np.testing.assert_array_equal(clap.peak_normalize(x, -1.0), pyln.normalize.peak(x, -1.0))
    y = pyln.normalize.peak(x, -1.0)
    np.testing.assert_array_equal(clap.int16_roundtrip(y), data.int16_to_float32(data.float32_to_int16(y)))


def test_tokenizer_without_files_is_refused(monkeypatch, tmp_path, roberta_tokenizer_dir):
    """Offline, transformers builds a vocabulary-less tokenizer without raising; we refuse it with the fix."""
    from mova_eval.errors import MetricUnavailable

    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(MetricUnavailable, match="mova-eval weights fetch roberta_base_vocab"):
        clap.load_tokenizer()
    assert len(clap.load_tokenizer(roberta_tokenizer_dir)) == 50265
