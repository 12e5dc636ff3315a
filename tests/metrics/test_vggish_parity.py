"""Our VGGish against the torch port (``torchvggish`` 0.2 on PyPI: the network class and log-mel front-end that
``harritaylor/torchvggish`` serves through torch.hub), with the same seeded random weights in the checkpoint's key
layout. Tolerance 1e-5 (relative to the output scale)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tv = pytest.importorskip("torchvggish", reason="reference torchvggish not installed (requirements/test-nodeps.txt)")

from mova_eval.metrics.features import vggish  # noqa: E402


def _wave(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * vggish.SAMPLE_RATE)) / vggish.SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.normal(size=t.size)).astype(np.float64)


def test_log_mel_matches_reference_front_end():
    wave = _wave(3.3)
    want = tv.waveform_to_examples(wave, vggish.SAMPLE_RATE, return_tensor=False)
    got = vggish.log_mel_examples(wave)
    assert got.shape == want.shape == (3, 96, 64)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_embeddings_match_reference_network(tmp_path):
    torch.manual_seed(0)
    ref = tv.VGG(tv.make_layers(), postprocess=False).eval()
    with torch.no_grad():
        for p in ref.parameters():  # seeded, scaled so the 128-d output is neither 0 nor huge
            p.copy_(torch.randn_like(p) * (2.0 / max(1, p[0].numel())) ** 0.5 if p.dim() > 1 else torch.randn_like(p) * 0.05)
    ckpt = tmp_path / "vggish-10086976.pth"
    torch.save(ref.state_dict(), ckpt)
    wave = _wave(2.5, seed=1)
    x = tv.waveform_to_examples(wave, vggish.SAMPLE_RATE, return_tensor=True).detach()
    for final_relu in (True, False):
        ours = vggish.load_vggish(ckpt, final_relu=final_relu)
        if not final_relu:  # fadtk: drop the port's last ReLU
            ref.embeddings = torch.nn.Sequential(*list(ref.embeddings.children())[:-1])
        with torch.no_grad():
            want = ref(x).numpy()
        got = vggish.embed(ours, wave)
        assert got.shape == (2, 128)
        scale = np.abs(want).max()
        assert scale > 1e-3 and (final_relu or (want < 0).any())
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)


def test_short_audio_gives_no_examples():
    assert vggish.log_mel_examples(np.zeros(15_000)).shape == (0, 96, 64)  # < 0.96 s: the reference drops it too
    assert vggish.log_mel_examples(np.zeros(16_000)).shape == (1, 96, 64)
