"""Our pure-torch I3D against cd-fvd's ``InceptionI3d`` (the TATS network) with the same seeded random weights, in
the real checkpoint's exact state_dict layout; and the input resizers against their references."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mova_eval.metrics.features import i3d  # noqa: E402


def _reference_module(name: str = "cdfvd.third_party.i3d.pytorch_i3d"):
    from tests.stubs import torchvision_stub

    with torchvision_stub.installed():
        return pytest.importorskip(name)


def _randomize(model, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype != torch.float32:
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif name.endswith("bn.weight"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:  # conv kernels: He-scaled so activations neither vanish nor explode over 60 layers
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5)


def test_i3d_matches_cdfvd_with_seeded_weights(tmp_path):
    ref_mod = _reference_module()
    ref = ref_mod.InceptionI3d(400, in_channels=3).eval()
    _randomize(ref, 0)
    ckpt = tmp_path / "i3d_pretrained_400.pt"
    torch.save(ref.state_dict(), ckpt)  # the checkpoint layout: a bare state_dict
    ours = i3d.load_i3d(ckpt)  # strict: every key name must match
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, size=(1, 16, 100, 130, 3), dtype=np.uint8)  # non-square, not 224: exercises resize
    x = i3d.to_unit_range(i3d.resize_bilinear_torch(video))
    with torch.no_grad():
        want = ref(x)
        got = ours(x)
    assert got.shape == (1, 400)
    scale = want.abs().max()
    assert scale > 1e-3  # the random network is not degenerate
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * float(scale))


def test_torch_resize_matches_cdfvd_preprocess():
    utils = _reference_module("cdfvd.third_party.i3d.utils")
    video = np.random.default_rng(1).integers(0, 256, size=(2, 3, 37, 53, 3), dtype=np.uint8)
    want = utils.preprocess_i3d(video)
    got = i3d.to_unit_range(i3d.resize_bilinear_torch(video))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_tf1_resize_sampling_rule():
    # TF1 resize_bilinear(align_corners=False): out[i] = in at i*in/out, linear between neighbours, edge clamped.
    row = np.arange(4, dtype=np.float32) * 10  # 0 10 20 30
    frames = np.broadcast_to(row[None, None, None, :, None], (1, 1, 2, 4, 3))
    out = i3d.resize_bilinear_tf1(frames, (2, 8))[0, 0, 0, 0].numpy()
    np.testing.assert_allclose(out, [0, 5, 10, 15, 20, 25, 30, 30], atol=1e-6)
    down = i3d.resize_bilinear_tf1(frames, (2, 2))[0, 0, 0, 0].numpy()
    np.testing.assert_allclose(down, [0, 20], atol=1e-6)  # no half-pixel centres: samples 0 and 2


def test_torchscript_loader_calls_the_stylegan_v_signature(tmp_path):
    """Plumbing only (the real file cannot be downloaded here): a scripted module with StyleGAN-V's call signature
    loads through ``torch.jit.load`` and is called with keyword flags."""

    class Fake(torch.nn.Module):
        def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                    return_features: bool = False) -> torch.Tensor:
            if rescale:
                x = x / 255.0 * 2 - 1
            return x.float().mean(dim=(2, 3, 4)).repeat(1, 134)[:, :400]

    p = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(Fake()).save(str(p))
    m = i3d.load_torchscript(p)
    out = m(torch.full((2, 3, 16, 8, 8), 255, dtype=torch.uint8), rescale=True, resize=True, return_features=True)
    assert out.shape == (2, 400) and torch.allclose(out, torch.ones(2, 400))


@pytest.mark.weights
def test_real_tats_checkpoint_loads_strictly():
    from mova_eval import weights
    from mova_eval.errors import WeightsMissingError

    if not os.environ.get("MOVA_EVAL_WEIGHTS"):
        pytest.skip("MOVA_EVAL_WEIGHTS is not set")
    try:
        path = weights.resolve("i3d_pretrained_400")
    except WeightsMissingError as e:
        pytest.skip(str(e))
    model = i3d.load_i3d(Path(path))
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 16, 224, 224))
    assert out.shape == (1, 400) and torch.isfinite(out).all()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_biased_fvd_math_equals_cdfvd_stylegan_v_statistics():
    """Same I3D-sized features → our biased-covariance Fréchet distance equals cd-fvd's ``compute_fvd_from_stats``
    over StyleGAN-V's ``FeatureStats`` (raw Σx, Σxxᵀ / N − μμᵀ, scipy sqrtm) within 1e-6 relative."""
    from mova_eval.metrics import frechet

    fvd_mod = _reference_module("cdfvd.fvd")
    rng = np.random.default_rng(4)
    real = rng.normal(size=(600, 400)) * 0.5
    fake = rng.normal(size=(600, 400)) * 0.6 + 0.05
    stats = []
    for x in (fake, real):
        s = fvd_mod.FeatureStats(capture_mean_cov=True)
        s.append(x.astype(np.float32))
        stats.append(s)
    want = fvd_mod.cdfvd.compute_fvd_from_stats(object.__new__(fvd_mod.cdfvd), *stats)
    ours = frechet.frechet_from_stats(frechet.GaussianStats.of(real.astype(np.float32)),
                                      frechet.GaussianStats.of(fake.astype(np.float32)), unbiased=False)
    assert ours == pytest.approx(float(want), rel=1e-6)
