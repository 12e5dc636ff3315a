"""S3FD face detector (Zhang et al., ICCV 2017), as used by the SyncNet / Wav2Lip / MOVA lip-sync pipelines.

Written from the published architecture: VGG16 trunk (conv6 dilated 1024, conv7 1×1), L2-normalised conv3_3 /
conv4_3 / conv5_3 sources (scales 10, 8, 5), two extra stride-2 blocks, six 3×3 loc/conf heads, max-out background
on the first head, anchors of 16…512 px at strides 4…128, variances (0.1, 0.2). The module's ``state_dict`` keys
match the official ``sfd_face.pth`` (``vgg.N``, ``L2Norm3_3.weight``, ``extras.N``, ``loc.N``, ``conf.N``), so
that file loads unchanged.

Post-processing reproduces the reference ``S3FD.detect_faces`` exactly but batched: per image, candidates with face
score > 0.05 (the 5000 best) go through greedy NMS at IoU 0.3 (at most 750 kept); the ones above ``conf_th`` are
scaled to pixels with float32 arithmetic, then all scales' boxes go through a second NMS at IoU 0.1. Greedy NMS
keeps a box iff no higher-scored kept box overlaps it, so running the first NMS only over boxes above ``conf_th``
gives the same survivors above ``conf_th`` — far cheaper, same boxes.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

#: BGR channel means the detector was trained with (subtracted from the RGB image channel-reversed)
BGR_MEAN = (104.0, 117.0, 123.0)
MIN_SIZES = (16, 32, 64, 128, 256, 512)
STEPS = (4, 8, 16, 32, 64, 128)
VARIANCES = (0.1, 0.2)
PRE_CONF_TH = 0.05
NMS_TOP_K = 5000
NMS_IOU = 0.3
KEEP_TOP_K = 750
FINAL_NMS_IOU = 0.1

# VGG trunk as (out_channels | "M" pool | "C" ceil-mode pool); ReLUs follow each conv. Indices in the ModuleList
# (and so the state_dict keys) follow the official layout: conv, relu, conv, relu, pool, …
_VGG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512, "M", 512, 512, 512, "M")


class _L2Norm(nn.Module):
    def __init__(self, channels: int, scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))
        self.eps = 1e-10

    def forward(self, x):
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        return self.weight.view(1, -1, 1, 1) * torch.div(x, norm)


class S3FDNet(nn.Module):
    """Returns raw head outputs; :func:`detect` turns them into boxes."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG:
            if v in ("M", "C"):
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=(v == "C")))
            else:
                layers += [nn.Conv2d(cin, v, 3, 1, padding=1), nn.ReLU(inplace=True)]
                cin = v
        layers += [nn.Conv2d(512, 1024, 3, 1, padding=6, dilation=6), nn.ReLU(inplace=True),
                   nn.Conv2d(1024, 1024, 1, 1), nn.ReLU(inplace=True)]
        self.vgg = nn.ModuleList(layers)
        self.L2Norm3_3 = _L2Norm(256, 10)
        self.L2Norm4_3 = _L2Norm(512, 8)
        self.L2Norm5_3 = _L2Norm(512, 5)
        self.extras = nn.ModuleList([nn.Conv2d(1024, 256, 1, 1), nn.Conv2d(256, 512, 3, 2, padding=1),
                                     nn.Conv2d(512, 128, 1, 1), nn.Conv2d(128, 256, 3, 2, padding=1)])
        src_ch = (256, 512, 512, 1024, 512, 256)
        self.loc = nn.ModuleList([nn.Conv2d(c, 4, 3, 1, padding=1) for c in src_ch])
        # the first conf head predicts 3 background scores + 1 face score (max-out background)
        self.conf = nn.ModuleList([nn.Conv2d(c, 4 if i == 0 else 2, 3, 1, padding=1) for i, c in enumerate(src_ch)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        """x: [B,3,H,W] float (RGB minus means). Returns loc [B,P,4], face score [B,P] and feature map sizes."""
        sources = []
        norms = {15: self.L2Norm3_3, 22: self.L2Norm4_3, 29: self.L2Norm5_3}  # after relu3_3, relu4_3, relu5_3
        for k, layer in enumerate(self.vgg):
            x = layer(x)
            if k in norms:
                sources.append(norms[k](x))
        sources.append(x)
        for k, layer in enumerate(self.extras):
            x = F.relu(layer(x), inplace=True)
            if k % 2 == 1:
                sources.append(x)
        locs, confs, sizes = [], [], []
        for i, s in enumerate(sources):
            c = self.conf[i](s)
            if i == 0:
                c = torch.cat((c[:, 0:3].max(dim=1, keepdim=True).values, c[:, 3:]), dim=1)
            locs.append(self.loc[i](s).permute(0, 2, 3, 1).reshape(s.shape[0], -1, 4))
            confs.append(c.permute(0, 2, 3, 1).reshape(s.shape[0], -1, 2))
            sizes.append((s.shape[2], s.shape[3]))
        loc = torch.cat(locs, 1)
        face = torch.softmax(torch.cat(confs, 1), dim=-1)[..., 1]
        return loc, face, sizes


def priors(image_hw: tuple[int, int], sizes: list[tuple[int, int]]) -> torch.Tensor:
    """Anchor boxes (cx, cy, w, h), normalised, computed in float64 and rounded to float32 as the reference."""
    imh, imw = image_hw
    out = []
    for (fh, fw), step, ms in zip(sizes, STEPS, MIN_SIZES):
        ii, jj = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        cx = (jj.ravel() + 0.5) / (imw / step)
        cy = (ii.ravel() + 0.5) / (imh / step)
        out.append(np.stack([cx, cy, np.full_like(cx, ms / imw), np.full_like(cy, ms / imh)], 1))
    return torch.from_numpy(np.concatenate(out).astype(np.float32))


def _decode(loc: torch.Tensor, pri: torch.Tensor) -> torch.Tensor:
    """Anchor offsets → corner boxes (normalised), float32 in the reference's operation order."""
    centre = pri[:, :2] + loc[:, :2] * VARIANCES[0] * pri[:, 2:]
    size = pri[:, 2:] * torch.exp(loc[:, 2:] * VARIANCES[1])
    boxes = torch.cat((centre, size), 1)
    boxes[:, :2] -= boxes[:, 2:] / 2
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS in descending score order (IoU on (x2-x1)*(y2-y1) areas, no +1)."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        order = rest[inter / (areas[i] + areas[rest] - inter) <= iou]
    return np.asarray(keep, dtype=int)


def _nms_torch_order(boxes: torch.Tensor, scores: torch.Tensor, iou: float) -> list[int]:
    """The first-stage NMS as the reference runs it (float32 torch arithmetic, ascending sort taken from the end)."""
    x1, y1, x2, y2 = boxes.unbind(1)
    area = (x2 - x1) * (y2 - y1)
    idx = scores.sort(0).indices[-NMS_TOP_K:]
    keep = []
    while idx.numel() > 0:
        i = idx[-1]
        keep.append(int(i))
        if idx.numel() == 1:
            break
        idx = idx[:-1]
        w = (torch.minimum(x2[idx], x2[i]) - torch.maximum(x1[idx], x1[i])).clamp(min=0.0)
        h = (torch.minimum(y2[idx], y2[i]) - torch.maximum(y1[idx], y1[i])).clamp(min=0.0)
        inter = w * h
        idx = idx[(inter / ((area[idx] - inter) + area[i])).le(iou)]
    return keep


def _prepare(frame_rgb: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    img = cv2.resize(frame_rgb, dsize=(0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    x = img.astype(np.float32).transpose(2, 0, 1)
    return x - np.asarray(BGR_MEAN[::-1], dtype=np.float32)[:, None, None]


@torch.inference_mode()
def detect(net: S3FDNet, frames_rgb, *, conf_th: float = 0.9, scales=(0.25,), batch_size: int = 16,
           device: str = "cpu") -> list[np.ndarray]:
    """Face boxes per frame: float64 [n, 5] (x1, y1, x2, y2, score) in original pixels, as ``detect_faces``.

    ``frames_rgb``: a sequence of uint8 [H, W, 3] RGB frames of one size (a clip).
    """
    n = len(frames_rgb)
    per_frame: list[list[np.ndarray]] = [[] for _ in range(n)]
    if n == 0:
        return []
    h, w = frames_rgb[0].shape[:2]
    scale_t = torch.tensor([w, h, w, h], dtype=torch.float32)
    for s in scales:
        pri = None
        for start in range(0, n, batch_size):
            batch = np.stack([_prepare(f, s) for f in frames_rgb[start : start + batch_size]])
            x = torch.from_numpy(batch).to(device)
            loc, face, sizes = net(x)
            loc, face = loc.float().cpu(), face.float().cpu()
            if pri is None:
                pri = priors(tuple(x.shape[2:]), sizes)
            for b in range(x.shape[0]):
                sc = face[b]
                cand = torch.nonzero(sc > PRE_CONF_TH).squeeze(1)
                if cand.numel() == 0:
                    continue
                if cand.numel() > NMS_TOP_K:  # the reference only looks at the 5000 best candidates
                    cand = cand[sc[cand].sort(0).indices[-NMS_TOP_K:]]
                top = cand[sc[cand] > conf_th]
                if top.numel() == 0:
                    continue
                boxes = _decode(loc[b, top], pri[top])
                keep = _nms_torch_order(boxes, sc[top], NMS_IOU)[:KEEP_TOP_K]
                pts = (boxes[keep] * scale_t).numpy().astype(np.float64)
                scores = sc[top][keep].numpy().astype(np.float64)
                per_frame[start + b].append(np.concatenate([pts, scores[:, None]], 1))
    out = []
    for dets in per_frame:
        arr = np.concatenate(dets, 0) if dets else np.empty((0, 5))
        out.append(arr[greedy_nms(arr[:, :4], arr[:, 4], FINAL_NMS_IOU)] if len(arr) else arr)
    return out


def load(path, device: str = "cpu") -> S3FDNet:
    """Build the network and load an official-layout state_dict (strict: every key must match)."""
    net = S3FDNet()
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.to(device).eval()
