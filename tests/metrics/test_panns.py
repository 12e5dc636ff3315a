"""Our Cnn14 against PANNs' reference model code (panns_inference.models + torchlibrosa) with shared random weights."""
from __future__ import annotations

import importlib
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mova_eval.metrics.features import panns  # noqa: E402


def _reference_models():
    """Import ``panns_inference.models`` without running the package ``__init__`` (whose config module downloads
    the AudioSet label CSV at import)."""
    pytest.importorskip("torchlibrosa")
    if "panns_inference" not in sys.modules:
        spec = importlib.util.find_spec("panns_inference")
        if spec is None:
            pytest.skip("panns-inference is not installed (requirements/test-nodeps.txt)")
        pkg = types.ModuleType("panns_inference")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__spec__ = spec
        sys.modules["panns_inference"] = pkg
    return importlib.import_module("panns_inference.models")


@pytest.mark.parametrize("sr", [32000, 16000])
def test_front_end_matches_librosa(sr):
    librosa = pytest.importorskip("librosa")
    _, window, _, mels, fmin, fmax = panns.CONFIGS[sr]
    ours = panns.mel_filterbank_slaney(sr, window, mels, fmin, fmax)
    ref = librosa.filters.mel(sr=sr, n_fft=window, n_mels=mels, fmin=fmin, fmax=fmax).T
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(panns.hann_periodic(window),
                               librosa.filters.get_window("hann", window, fftbins=True), atol=1e-12)


@pytest.mark.parametrize("sr", [32000, 16000])
def test_cnn14_matches_reference_code(sr):
    models = _reference_models()
    _, window, hop, mels, fmin, fmax = panns.CONFIGS[sr]
    ours = panns.build_cnn14(sr, seed=1234)
    ref = models.Cnn14(sample_rate=sr, window_size=window, hop_size=hop, mel_bins=mels, fmin=fmin, fmax=fmax,
                       classes_num=527).eval()
    # the reference's own filter banks stay; every other tensor comes from ours, with the checkpoint's key names
    ref_sd = ref.state_dict()
    assert set(ours.state_dict()) == set(ref_sd), set(ours.state_dict()) ^ set(ref_sd)
    for k in ("spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
              "logmel_extractor.melW"):
        np.testing.assert_allclose(ours.state_dict()[k].numpy(), ref_sd[k].numpy(), atol=2e-6)
    state = {k: v for k, v in ours.state_dict().items() if not k.startswith(("spectrogram", "logmel"))}
    ref.load_state_dict(state, strict=False)

    rng = np.random.default_rng(0)
    t = np.arange(int(sr * 1.5)) / sr
    x = np.stack([0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size),
                  0.5 * rng.standard_normal(t.size)]).astype(np.float32)
    with torch.no_grad():
        a = ours(torch.from_numpy(x))
        b = ref(torch.from_numpy(x))
    for key in ("clipwise_output", "embedding"):
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-5, rtol=1e-5, err_msg=key)
    logit_b = torch.logit(b["clipwise_output"].double(), eps=0)
    np.testing.assert_allclose(a["logits"].double().numpy(), logit_b.numpy(), atol=1e-4)
    assert a["clipwise_output"].shape == (2, 527) and a["embedding"].shape == (2, 2048)
    # the random weights must make the classes differ, or the comparison proves little
    assert a["clipwise_output"].std() > 1e-3


def test_checkpoint_layout_roundtrip(tmp_path, monkeypatch):
    """A file in the official layout ({'model': state_dict, ...}) loads strictly through the registry."""
    model = panns.build_cnn14(16000, seed=7)
    path = tmp_path / "Cnn14_16k_mAP=0.438.pth"
    torch.save({"model": model.state_dict(), "iteration": np.int64(5)}, path)
    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(panns, "_LOADED", {})
    loaded = panns.load_cnn14(16000, "cpu")
    x = torch.randn(1, 16000)
    with torch.no_grad():
        np.testing.assert_array_equal(loaded(x)["logits"].numpy(), model(x)["logits"].numpy())


def test_missing_weights_name_the_fetch_command(monkeypatch, tmp_path):
    from mova_eval.errors import WeightsMissingError

    monkeypatch.setenv("MOVA_EVAL_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(panns, "_LOADED", {})
    with pytest.raises(WeightsMissingError, match="mova-eval weights fetch panns_cnn14_32k"):
        panns.load_cnn14(32000, "cpu")
