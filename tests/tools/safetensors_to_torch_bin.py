#!/usr/bin/env python3
"""Write a safetensors file's tensors as a PyTorch `torch.save` zip checkpoint, without torch.

Used by forgetlab's tests to prove that `pytorch_model.bin` checkpoints (the official
state-spaces format) load. The pickle references `torch._utils._rebuild_tensor_v2` and
`torch.<Dtype>Storage` by name, exactly as torch writes them; stand-in modules registered under
those names let the standard pickler emit the references without importing torch.

usage: safetensors_to_torch_bin.py IN.safetensors OUT.bin [--dtype f32|f16|bf16]
       [--rename OLD=NEW ...] [--duplicate SRC=DST ...]
"""
import argparse
import collections
import json
import pickle
import struct
import sys
import types
import zipfile

torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")


def _rebuild_tensor_v2(*args):  # referenced by name only
    raise RuntimeError("stand-in")


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
STORAGES = {}
for name in ("FloatStorage", "HalfStorage", "BFloat16Storage"):
    cls = type(name, (), {})
    cls.__module__ = "torch"
    setattr(torch, name, cls)
    STORAGES[name] = cls
torch._utils = torch_utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils


class Storage:
    def __init__(self, key, kind, numel):
        self.key, self.kind, self.numel = key, kind, numel


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride, acc = [], 1
        for dim in reversed(self.shape):
            stride.append(acc)
            acc *= dim
        return (
            _rebuild_tensor_v2,
            (self.storage, 0, tuple(self.shape), tuple(reversed(stride)), False, collections.OrderedDict()),
        )


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", STORAGES[obj.kind], obj.key, "cpu", obj.numel)
        return None


def read_safetensors(path):
    data = open(path, "rb").read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    body = data[8 + header_len :]
    out = collections.OrderedDict()
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise SystemExit(f"{name}: only F32 input is supported, got {info['dtype']}")
        start, end = info["data_offsets"]
        raw = body[start:end]
        out[name] = (info["shape"], struct.unpack(f"<{len(raw) // 4}f", raw))
    return out


def encode(values, dtype):
    if dtype == "f32":
        return struct.pack(f"<{len(values)}f", *values), "FloatStorage"
    if dtype == "f16":
        return struct.pack(f"<{len(values)}e", *values), "HalfStorage"
    # bf16: the high half of the f32 bit pattern, rounded to nearest even
    out = bytearray()
    for v in values:
        (bits,) = struct.unpack("<I", struct.pack("<f", v))
        bits += 0x7FFF + ((bits >> 16) & 1)
        out += struct.pack("<H", (bits >> 16) & 0xFFFF)
    return bytes(out), "BFloat16Storage"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    ap.add_argument("--rename", action="append", default=[])
    ap.add_argument("--duplicate", action="append", default=[])
    args = ap.parse_args()
    tensors = read_safetensors(args.src)
    for pair in args.rename:
        old, new = pair.split("=")
        tensors[new] = tensors.pop(old)
    for pair in args.duplicate:
        src, dst = pair.split("=")
        tensors[dst] = tensors[src]
    state = collections.OrderedDict()
    blobs = []
    for i, (name, (shape, values)) in enumerate(tensors.items()):
        raw, kind = encode(values, args.dtype)
        state[name] = Tensor(Storage(str(i), kind, len(values)), list(shape))
        blobs.append((str(i), raw))
    import io

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(state)
    with zipfile.ZipFile(args.dst, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for key, raw in blobs:
            z.writestr(f"archive/data/{key}", raw)
        z.writestr("archive/version", "3\n")


if __name__ == "__main__":
    main()
