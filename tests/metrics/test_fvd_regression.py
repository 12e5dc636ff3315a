"""fvd-comparison's random-video FVD (``universome/fvd-comparison``: README "[FVD scores] Theirs: 10.13808536529541.
Ours: 10.138084766713924"), reproduced through our ``fvd_tf`` code path — only with the real ``i3d_torchscript.pt``.

What that number is (read from ``compare_metrics.py`` at commit 1c54d8d): two sets of 128 videos (the script's
``num_videos``; its README says 256, the script that prints the value uses 128), 16 frames of 224×224×3, drawn with
NumPy's legacy ``RandomState(seed).rand`` (seed 1 "fake", seed 2 "real"), cast to float32, values in [0, 1) fed to the
detector as they are (already 224², no rescaling to [−1, 1]). "Theirs" is the TensorFlow original (tf-hub I3D
logits, TF-GAN distance, covariance ÷(N−1)); "ours" is StyleGAN-V's TorchScript called with ``rescale=False,
resize=False, return_features=True`` and ``np.cov`` (÷(N−1)). NumPy's ``RandomState`` stream is reproducible
exactly, so we regenerate the same videos (in chunks: the stream fills C order, so chunks equal one big draw).

Our protocol with that detector call and that estimator is ``fvd_tf`` (TF1 resize, ``2x/255 − 1``, flags off,
unbiased covariance; ``fvd_styleganv`` uses ``rescale/resize=True`` and ÷N, so it is not this number). We feed
``FVD.embed`` the pre-image ``255·(x + 1)/2`` of the videos, so that its own resize (identity at 224²) and
``2x/255 − 1`` hand the detector the script's inputs; the test checks that they do (float32 rounding, < 1e-6), then
takes the distance with ``frechet.distance_report``, as ``FVD.compute`` does (seed-2 videos as the reference).

Tolerance: 1e-3 relative. The published TF and TorchScript values agree to 6e-8; ours differ from theirs by CPU vs
GPU float32 convolutions and by the eigenvalue trace (equal to scipy's ``sqrtm`` within 1e-6 in test_frechet).
Not measured here (no weights on the development machine). The bound stays 8× tighter than the change the ÷N
estimator would make (× 127/128 on the covariance terms, ≈ 0.8 % of this value), so a wrong estimator fails.
Cost: 256 I3D passes on CPU (minutes on 2 cores).
"""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.weights

PUBLISHED = 10.138085  # TF 10.13808536529541, TorchScript 10.138084766713924 (fvd-comparison README)
N_VIDEOS, FRAMES, SIZE, CHUNK = 128, 16, 224, 8


def _embed_random_videos(metric, seed: int) -> np.ndarray:
    from mova_eval.metrics.features import i3d

    rs = np.random.RandomState(seed)
    rows = []
    for start in range(0, N_VIDEOS, CHUNK):
        x = rs.rand(CHUNK, FRAMES, SIZE, SIZE, 3).astype(np.float32)  # the script's videos, C-order stream
        pre = (x.astype(np.float64) + 1.0) * (255.0 / 2.0)  # what fvd_tf's 2v/255 − 1 maps back to x
        if start == 0:  # the detector sees the script's input, up to float32 rounding
            seen = i3d.to_unit_range(i3d.resize_bilinear_tf1(pre)).numpy()
            assert np.abs(seen - x.transpose(0, 4, 1, 2, 3)).max() < 1e-6
        rows.append(metric.embed(pre))
    return np.concatenate(rows)


def test_fvd_comparison_random_videos():
    from mova_eval import weights
    from mova_eval.errors import WeightsMissingError
    from mova_eval.metrics import frechet, fvd

    try:
        weights.resolve("i3d_torchscript")
    except WeightsMissingError as e:
        pytest.skip(str(e))
    m = fvd.FVD({"protocol": "fvd_tf"})
    assert m.protocol.unbiased, "the published value uses np.cov / TF-GAN (÷(N−1))"
    m.load_extractor()
    fake, real = _embed_random_videos(m, 1), _embed_random_videos(m, 2)
    rep = frechet.distance_report(list(fake), frechet.GaussianStats.of(real), real, unbiased=m.protocol.unbiased,
                                  n_boot=0, with_kid=False)
    assert rep.details["n_clips"] == rep.details["reference_n"] == N_VIDEOS
    assert rep["distance"] == pytest.approx(PUBLISHED, rel=1e-3)
