"""Object-detection ops: RoiAlign and NonMaxSuppression.

Both follow onnxruntime's arithmetic: RoiAlign's region geometry and sampling
positions are computed in float32 (float64 for float64 inputs), including its
"max" mode, which takes the largest weighted corner value of each bilinear
sample; NonMaxSuppression compares float32 intersection-over-union values with
the threshold, visits boxes by decreasing score (ties: lower index first), and
never lets a degenerate (zero-area) box suppress another.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import FLOAT_TYPES, DType
from ..types import TensorType
from .registry import Attr, InferContext, OpDef, register
from .symbolic import optional

# RoiAlign -------------------------------------------------------------------


def _roi_align_infer(ctx: InferContext) -> list[TensorType]:
    x, rois, batch = ctx.input(0), ctx.input(1), ctx.input(2)
    if x.rank != 4:
        raise ctx.error("X must be (N, C, H, W)")
    if rois.rank != 2 or rois.shape[1] not in (4,) or rois.dtype != x.dtype:
        raise ctx.error(f"rois must be a (num_rois, 4) tensor of X's type, got {rois}")
    if batch.rank != 1 or batch.dtype != DType.int64:
        raise ctx.error(f"batch_indices must be a 1-D int64 tensor, got {batch}")
    height, width = ctx.attrs["output_height"], ctx.attrs["output_width"]
    if height < 1 or width < 1:
        raise ctx.error(f"output_height and output_width must be positive, got {height} and {width}")
    return [x.with_shape((rois.shape[0], x.shape[1], height, width))]


def _bilinear_axis(c: np.ndarray, length: int) -> tuple[np.ndarray, ...]:
    """Per sample along one axis: valid flag, low and high indices, and the
    weights of the high and low neighbours (coordinates below 0 clamp to 0,
    at or past the last pixel to it; beyond [-1, length] the sample is 0)."""
    valid = (c >= -1) & (c <= length)
    c = np.maximum(c, 0)
    low = c.astype(np.int64)
    end = low >= length - 1
    low = np.where(end, length - 1, low)
    high = np.where(end, length - 1, low + 1)
    frac = np.where(end, 0, c - low.astype(c.dtype))
    return valid, low, high, frac, 1 - frac


def _roi_samples(start: Any, size: Any, bins: int, grid: int, ct: type) -> np.ndarray:
    """Sampling positions along one axis of a region: `grid` per bin, bin-major."""
    step = size / ct(bins)
    within = (np.arange(grid, dtype=ct) + ct(0.5)) * step / ct(grid)
    return (start + np.arange(bins, dtype=ct)[:, None] * step + within).reshape(-1)


def _roi_align_ref(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    x, rois, batch = inputs[0], inputs[1], inputs[2]
    assert x is not None and rois is not None and batch is not None
    ct = np.float64 if x.dtype == np.float64 else np.float32
    half_pixel = attrs["coordinate_transformation_mode"] == "half_pixel"
    oh, ow, ratio = attrs["output_height"], attrs["output_width"], attrs["sampling_ratio"]
    channels, height, width = x.shape[1:]
    out = np.zeros((len(rois), channels, oh, ow))
    for r, roi in enumerate(rois.astype(ct)):
        x1, y1, x2, y2 = (v * ct(attrs["spatial_scale"]) - ct(0.5 if half_pixel else 0) for v in roi)
        rw, rh = x2 - x1, y2 - y1
        if not half_pixel:
            rw, rh = max(rw, ct(1)), max(rh, ct(1))
        gh = ratio if ratio > 0 else int(np.ceil(rh / ct(oh)))
        gw = ratio if ratio > 0 else int(np.ceil(rw / ct(ow)))
        if gh * gw == 0:
            continue
        vy, yl, yh, ly, hy = _bilinear_axis(_roi_samples(y1, rh, oh, gh, ct), height)
        vx, xl, xh, lx, hx = _bilinear_axis(_roi_samples(x1, rw, ow, gw, ct), width)
        valid = (vy[:, None] & vx[None, :]).astype(np.float64)
        image = x[int(batch[r])].astype(np.float64)
        corners = [
            (yl, xl, hy[:, None] * hx[None, :]),
            (yl, xh, hy[:, None] * lx[None, :]),
            (yh, xl, ly[:, None] * hx[None, :]),
            (yh, xh, ly[:, None] * lx[None, :]),
        ]
        terms = [image[:, ys[:, None], xs[None, :]] * (w * valid) for ys, xs, w in corners]
        if attrs["mode"] == "avg":
            pooled = sum(terms).reshape(channels, oh, gh, ow, gw).sum(axis=(2, 4)) / max(gh * gw, 1)
        else:
            pooled = np.maximum.reduce(terms).reshape(channels, oh, gh, ow, gw).max(axis=(2, 4))
        out[r] = pooled
    return [out.astype(x.dtype)]


register(
    OpDef(
        "RoiAlign",
        _roi_align_infer,
        _roi_align_ref,
        attrs={
            "coordinate_transformation_mode": Attr("string", "half_pixel", ("half_pixel", "output_half_pixel")),
            "mode": Attr("string", "avg", ("avg", "max")),
            "output_height": Attr("int", 1),
            "output_width": Attr("int", 1),
            "sampling_ratio": Attr("int", 0),
            "spatial_scale": Attr("float", 1.0),
        },
        inputs=(3, 3),
        dtypes=FLOAT_TYPES,
        doc="Pool each region of interest into output_height x output_width bins of bilinear samples.",
    )
)


# NonMaxSuppression ----------------------------------------------------------


def _nms_infer(ctx: InferContext) -> list[TensorType]:
    boxes, scores = ctx.input(0), ctx.input(1)
    if boxes.rank != 3 or boxes.shape[2] not in (4,):
        raise ctx.error(f"boxes must be (num_batches, num_boxes, 4), got {boxes}")
    if scores.rank != 3 or scores.dtype != boxes.dtype:
        raise ctx.error(f"scores must be a (num_batches, num_classes, num_boxes) tensor of boxes' type, got {scores}")
    for i, dtype in ((2, DType.int64), (3, boxes.dtype), (4, boxes.dtype)):
        if ctx.has(i) and (ctx.input(i).dtype != dtype or ctx.input(i).rank > 1):
            raise ctx.error(f"input {i} must be a {dtype.name} scalar, got {ctx.input(i)}")
    return [TensorType(DType.int64, (ctx.fresh("selected"), 3))]


def _corners(boxes: np.ndarray, center_point_box: int) -> tuple[np.ndarray, ...]:
    """(y_min, x_min, y_max, x_max) of every box."""
    if center_point_box:
        xc, yc, w, h = np.moveaxis(boxes, -1, 0)
        return yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2
    y1, x1, y2, x2 = np.moveaxis(boxes, -1, 0)
    return np.minimum(y1, y2), np.minimum(x1, x2), np.maximum(y1, y2), np.maximum(x1, x2)


def _suppressed(i: int, kept: list[int], corners: tuple[np.ndarray, ...], threshold: np.floating) -> bool:
    """Whether box i overlaps one of the kept boxes by an IoU above the threshold."""
    y0, x0, y1, x1 = corners
    others = np.asarray(kept)
    dy = np.minimum(y1[i], y1[others]) - np.maximum(y0[i], y0[others])
    dx = np.minimum(x1[i], x1[others]) - np.maximum(x0[i], x0[others])
    area = (y1[i] - y0[i]) * (x1[i] - x0[i])
    areas = (y1[others] - y0[others]) * (x1[others] - x0[others])
    inter = dy * dx
    union = area + areas - inter
    ok = (dy > 0) & (dx > 0) & (inter > 0) & (area > 0) & (areas > 0) & (union > 0)
    iou = inter / np.where(ok, union, 1)
    return bool(np.any(ok & (iou > threshold)))


def _nms_ref(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    boxes, scores = inputs[0], inputs[1]
    assert boxes is not None and scores is not None
    limit, iou, floor = (optional(inputs, i) for i in (2, 3, 4))
    most = max(int(limit.reshape(-1)[0]), 0) if limit is not None and limit.size else 0
    threshold = iou.reshape(-1)[0] if iou is not None and iou.size else boxes.dtype.type(0)
    selected: list[tuple[int, int, int]] = []
    for b in range(boxes.shape[0]):
        corners = _corners(boxes[b], attrs["center_point_box"])
        for k in range(scores.shape[1]):
            s = scores[b, k]
            candidates = np.arange(len(s))
            if floor is not None and floor.size:
                candidates = np.nonzero(s > floor.reshape(-1)[0])[0]
            kept: list[int] = []
            for i in candidates[np.argsort(-s[candidates], kind="stable")]:
                if len(kept) >= most:
                    break
                if not kept or not _suppressed(int(i), kept, corners, threshold):
                    kept.append(int(i))
            selected += [(b, k, i) for i in kept]
    return [np.asarray(selected, np.int64).reshape(-1, 3)]


register(
    OpDef(
        "NonMaxSuppression",
        _nms_infer,
        _nms_ref,
        attrs={"center_point_box": Attr("int", 0, (0, 1))},
        inputs=(2, 5),
        dtypes=frozenset({DType.float32}),
        doc="Greedy per-class box selection by score, dropping boxes whose IoU with a kept one exceeds the "
        "threshold; returns [batch, class, box] rows.",
    )
)
