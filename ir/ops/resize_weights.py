"""Per-axis sampling for Resize: source coordinates, nearest indices and
interpolation weight matrices (rows: output positions, columns: input positions).

Source coordinates are computed in float32 in onnxruntime's order of
operations; weights are float64. Out-of-range taps are clamped to the edge
(or dropped and renormalised with exclude_outside).
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


def original_coords(mode: str, out: int, length: int, scale: np.float32, roi: tuple[float, float]) -> np.ndarray:
    """Source coordinate (float32) of each of `out` output positions along an
    axis of `length` inputs under a coordinate_transformation_mode."""
    x = np.arange(out, dtype=F32)
    half, scale = F32(0.5), F32(scale)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + half) / scale
    if mode == "pytorch_half_pixel":
        return (x + half) / scale - half if out > 1 else np.zeros(out, F32)
    if mode == "align_corners":
        return x * F32(length - 1) / F32(out - 1) if out > 1 else np.zeros(out, F32)
    if mode == "tf_crop_and_resize":
        start, end = F32(roi[0]), F32(roi[1])
        if out == 1:
            return np.full(out, 0.5 * (float(start) + float(end)) * (length - 1), F32)
        return start * F32(length - 1) + (x * (end - start) * F32(length - 1)) / F32(out - 1)
    if mode == "half_pixel_symmetric":
        adjustment = F32(out) / (scale * F32(length))
        offset = F32(length) / F32(2) * (F32(1) - adjustment)
        return (np.float64(offset) + (x.astype(np.float64) + 0.5) / np.float64(scale) - 0.5).astype(F32)
    return (x + half) / scale - half  # half_pixel


def nearest_indices(coords: np.ndarray, nearest_mode: str, length: int) -> np.ndarray:
    """Input index picked by each coordinate, clamped to the axis."""
    wide = coords.astype(np.float64)
    away = np.copysign(np.floor(np.abs(wide) + 0.5), wide)  # round half away from zero
    if nearest_mode == "round_prefer_floor":
        picked = np.where(wide == np.trunc(wide) + 0.5, np.floor(wide), away)
    elif nearest_mode == "round_prefer_ceil":
        picked = away
    elif nearest_mode == "floor":
        picked = np.floor(wide)
    else:
        picked = np.ceil(wide)
    return np.clip(picked, 0, length - 1).astype(np.intp)


def _scatter(rows: int, length: int, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weight matrix from per-row taps; taps on the same column add up."""
    matrix = np.zeros((rows, length))
    np.add.at(matrix, (np.repeat(np.arange(rows), index.shape[1]), index.reshape(-1)), weight.reshape(-1))
    return matrix


def linear_weights(coords: np.ndarray, length: int) -> np.ndarray:
    """Two-tap linear interpolation with the coordinate clamped to the axis."""
    x = np.clip(coords, F32(0), F32(length - 1))
    left = np.minimum(x.astype(np.int64), length - 1)
    right = np.minimum(left + 1, length - 1)
    frac = (x - left.astype(F32)).astype(np.float64)
    index = np.stack([left, right], axis=1)
    return _scatter(len(coords), length, index, np.stack([1 - frac, frac], axis=1))


def cubic_coefficients(s: np.ndarray, a: float) -> np.ndarray:
    """Keys cubic convolution weights of the taps at offsets -1, 0, 1, 2 from floor(x)."""
    s = s.astype(np.float64)
    t = 1 - s
    return np.stack(
        [
            ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a,
            ((a + 2) * s - (a + 3)) * s * s + 1,
            ((a + 2) * t - (a + 3)) * t * t + 1,
            ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
        ],
        axis=1,
    )


def cubic_weights(coords: np.ndarray, length: int, a: float, exclude_outside: int) -> np.ndarray:
    base = np.floor(coords)
    weights = cubic_coefficients(coords - base, a)
    index = base.astype(np.int64)[:, None] + np.arange(-1, 3)
    if exclude_outside:
        weights = np.where((index < 0) | (index >= length), 0.0, weights)
        weights /= weights.sum(axis=1, keepdims=True)
    return _scatter(len(coords), length, np.clip(index, 0, length - 1), weights)


def _cubic_filter(x: np.ndarray, a: float) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def antialias_weights(
    coords: np.ndarray, length: int, scale: np.float32, mode: str, a: float, exclude_outside: int
) -> np.ndarray:
    """Resampling with the filter stretched by 1/scale when downscaling
    (Pillow's scheme, as onnxruntime implements antialias)."""
    shrink = min(float(scale), 1.0)
    support = (1.0 if mode == "linear" else 2.0) / shrink
    window = int(np.ceil(support)) * 2 + 1
    center = 0.5 + (np.arange(len(coords), dtype=np.float64) if scale == 1 else coords.astype(np.float64))
    first = np.floor(center - support + 0.5).astype(np.int64)
    count = np.clip(np.floor(center + support + 0.5).astype(np.int64) - first, 0, window)
    index = first[:, None] + np.arange(window)
    used = np.arange(window) < count[:, None]
    if exclude_outside:
        used &= (index >= 0) & (index < length)
    distance = (index - center[:, None] + 0.5) * shrink
    weights = np.where(mode == "linear", np.clip(1 - np.abs(distance), 0, None), _cubic_filter(distance, a)) * used
    total = weights.sum(axis=1, keepdims=True)
    weights /= np.where(total == 0, 1.0, total)
    return _scatter(len(coords), length, np.clip(index, 0, length - 1), weights)
