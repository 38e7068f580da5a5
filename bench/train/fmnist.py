"""bench/train: Fashion-MNIST as the Python peers (torch_train.py, jax_train.py) load it, with numpy only, so that
both peers train on the same arrays whatever framework their virtual environment holds."""
import gzip
import os

import numpy as np

FMNIST_DIR = os.environ.get("CELO_FASHION_MNIST_DIR") or "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    """An IDX file (gzip) as a numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def adaptive_avg_pool(x, side):
    """x [n, h, w] averaged to [n, side, side] over the boxes of torch's adaptive_avg_pool2d: output i covers
    inputs floor(i*h/side) .. ceil((i+1)*h/side)-1 (whole pixels, neighbouring boxes may overlap; celo's
    CELO_RESIZE_AREA weighs fractional overlaps instead, which changes values, not speed)."""
    def boxes(n):
        return [(i * n // side, -(-(i + 1) * n // side)) for i in range(side)]

    x = np.stack([x[:, a:b, :].mean(axis=1) for a, b in boxes(x.shape[1])], axis=1)
    return np.stack([x[:, :, a:b].mean(axis=2) for a, b in boxes(x.shape[2])], axis=2)


def fashion(side):
    """Training images [n, side*side] float32 (area-averaged to side x side, standardized) and labels int64,
    and where they came from. Random data of the same shapes when the files are missing: the values do not matter
    for speed."""
    try:
        x = read_idx(os.path.join(FMNIST_DIR, "train-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
        y = read_idx(os.path.join(FMNIST_DIR, "train-labels-idx1-ubyte.gz")).astype(np.int64)
        src = "files"
    except OSError:
        rng = np.random.default_rng(0)
        x = rng.random((60000, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, 60000)
        src = "random"
    if side != x.shape[1]:
        x = adaptive_avg_pool(x, side)
    x = x.reshape(len(x), -1)
    x = (x - x.mean()) / (x.std() + 1e-8)
    return np.ascontiguousarray(x, dtype=np.float32), y, src
