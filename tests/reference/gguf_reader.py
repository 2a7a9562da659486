"""A small GGUF reader in numpy, written from the format description, independent of unmask's C++ parser.

read_gguf(path) -> (metadata: dict, tensors: dict name -> numpy array shaped in row-major order, i.e. ne reversed).
Only the types the reference needs: f32, f16, bf16 tensors. rewrite_f32(path, name, fn) replaces the values of an f32
tensor in place (tests that need other values than a random initialisation gives).
"""
import struct

import numpy as np

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class _Cursor:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def take(self, fmt):
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = bytes(self.buf[self.pos:self.pos + n]).decode("utf-8")
        self.pos += n
        return s

    def value(self, vtype):
        if vtype == 8:
            return self.string()
        if vtype == 9:
            etype, count = self.take("<I"), self.take("<Q")
            return [self.value(etype) for _ in range(count)]
        return self.take(_SCALARS[vtype])


def _tensor(buf, offset, ggml_type, ne):
    count = int(np.prod(ne))
    shape = tuple(reversed(ne))
    if ggml_type == 0:
        return np.frombuffer(buf, np.float32, count, offset).reshape(shape)
    if ggml_type == 1:
        return np.frombuffer(buf, np.float16, count, offset).astype(np.float32).reshape(shape)
    if ggml_type == 30:
        raw = np.frombuffer(buf, np.uint16, count, offset).astype(np.uint32) << 16
        return raw.view(np.float32).reshape(shape)
    raise ValueError(f"tensor type {ggml_type} is not supported by the reference")


def _layout(buf, path):
    """-> (metadata, [(name, ne, ggml type, offset of the data in the file)])"""
    c = _Cursor(buf)
    if buf[:4] != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    c.pos = 4
    version, n_tensors, n_kv = c.take("<I"), c.take("<Q"), c.take("<Q")
    assert version in (2, 3), version
    meta = {}
    for _ in range(n_kv):
        key = c.string()
        meta[key] = c.value(c.take("<I"))
    infos = []
    for _ in range(n_tensors):
        name = c.string()
        ne = [c.take("<Q") for _ in range(c.take("<I"))]
        infos.append((name, ne, c.take("<I"), c.take("<Q")))
    align = meta.get("general.alignment", 32)
    data_start = (c.pos + align - 1) // align * align
    return meta, [(name, ne, t, data_start + off) for name, ne, t, off in infos]


def read_gguf(path):
    buf = open(path, "rb").read()
    meta, infos = _layout(buf, path)
    return meta, {name: _tensor(buf, off, t, ne) for name, ne, t, off in infos}


def rewrite_f32(path, name, fn):
    """Replaces the f32 tensor `name` of the GGUF file by fn(its values), in place (same shape)."""
    buf = open(path, "rb").read()
    ne, t, off = next((ne, t, off) for n, ne, t, off in _layout(buf, path)[1] if n == name)
    assert t == 0, f"{name} is expected in f32"
    new = np.asarray(fn(_tensor(buf, off, t, ne)), dtype=np.float32)
    assert new.shape == tuple(reversed(ne)), f"{name}: new values of shape {new.shape}"
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(new.tobytes())
