#!/usr/bin/env python3
"""Regenerates the crafted checkpoint files of tests/data/bad/ (used by tests/test_io_bad_files.cpp).

Standard library only (no torch). Torch-style pickles are produced with Python's own pickle module
and small stand-in classes whose __module__/__qualname__ mimic torch's, or written as raw opcodes; the
malicious pickles (os.system, builtins.eval, ...) are only ever WRITTEN here, never loaded.

Usage: python3 make_bad_files.py [output_dir]   (default: the folder of this script)
"""
import collections
import os
import pickle
import struct
import subprocess
import sys
import types
import zipfile

OUT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


# ---- safetensors ------------------------------------------------------------------------------


def st_raw(header_text, data=b"", header_len=None):
    """A safetensors file from literal header text (so it can be malformed)."""
    h = header_text.encode()
    return struct.pack("<Q", len(h) if header_len is None else header_len) + h + data


def st_json(header, data=b""):
    import json

    return st_raw(json.dumps(header), data)


F32_6 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)


def make_safetensors():
    write("empty.safetensors", b"")
    write("too_short.safetensors", b"\x10\x00\x00")
    write("header_past_end.safetensors", st_raw('{"a": 1}', header_len=1000))
    write("header_absurd.safetensors", st_raw("{}", header_len=1 << 62))
    write("bad_json.safetensors", st_raw('{"w": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]', F32_6))
    write("header_not_object.safetensors", st_raw("[1, 2, 3]"))
    write("entry_not_object.safetensors", st_json({"w": [1, 2]}))
    write("missing_offsets.safetensors", st_json({"w": {"dtype": "F32", "shape": [6]}}, F32_6))
    write("unknown_dtype.safetensors", st_json({"w": {"dtype": "F7", "shape": [6], "data_offsets": [0, 24]}}, F32_6))
    write("negative_dim.safetensors", st_json({"w": {"dtype": "F32", "shape": [-2, 3], "data_offsets": [0, 24]}}, F32_6))
    write("size_mismatch.safetensors", st_json({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}, F32_6))
    write("begin_after_end.safetensors", st_json({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}, F32_6))
    # A lying header: claims 4 KiB of data, the file holds 24 bytes.
    write("offsets_out_of_bounds.safetensors",
          st_json({"w": {"dtype": "F32", "shape": [1024], "data_offsets": [0, 4096]}}, F32_6))
    write("overlapping.safetensors", st_json({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                              "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, F32_6))
    # json.dumps cannot write a duplicate key; the text is written by hand.
    write("duplicate_names.safetensors", st_raw('{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
                                                '"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}', F32_6))
    write("metadata_not_str.safetensors", st_json({"__metadata__": {"step": 5},
                                                   "w": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}}, F32_6))
    write("numel_overflow.safetensors",
          st_json({"w": {"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 24]}}, F32_6))
    good = st_json({"w": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}}, F32_6)
    write("truncated_data.safetensors", good[:-10])


# ---- torch.save look-alikes -------------------------------------------------------------------


def _install_fake_torch():
    """Stand-ins registered as torch / torch._utils so pickle writes torch's global names."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    torch._utils = utils

    def named(fn, module, name):
        fn.__module__, fn.__name__, fn.__qualname__ = module, name, name
        return fn

    def never_called(*args):
        raise RuntimeError("stand-in only")

    utils._rebuild_tensor_v2 = named(lambda *a: never_called(), "torch._utils", "_rebuild_tensor_v2")
    utils._rebuild_parameter = named(lambda *a: never_called(), "torch._utils", "_rebuild_parameter")
    for name in ["FloatStorage", "LongStorage", "HalfStorage"]:
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    sys.modules["torch"] = torch
    sys.modules["torch._utils"] = utils
    return torch, utils


torch, torch_utils = _install_fake_torch()


class Storage:
    def __init__(self, key, cls, numel, data):
        self.key, self.cls, self.numel, self.data = key, cls, numel, data


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def __reduce__(self):
        return (torch_utils._rebuild_tensor_v2,
                (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))


class Parameter:
    def __init__(self, tensor):
        self.tensor = tensor

    def __reduce__(self):
        return (torch_utils._rebuild_parameter, (self.tensor, True, collections.OrderedDict()))


class Evil:
    """Pickles as a call of `fn(*args)`; loading it would run it."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


def dumps(obj, protocol=2):
    import io

    buf = io.BytesIO()
    TorchPickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def torch_zip(name, pkl, storages=(), folder="archive", byteorder="little", with_pkl=True):
    """A zip laid out like torch.save's: <folder>/data.pkl, byteorder, data/<key>, version."""
    path = os.path.join(OUT, name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        def add(entry, data):
            info = zipfile.ZipInfo(f"{folder}/{entry}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, data)

        if with_pkl:
            add("data.pkl", pkl)
        if byteorder is not None:
            add("byteorder", byteorder)
        for s in storages:
            add(f"data/{s.key}", s.data)
        add("version", "3\n")


def state_dict(items):
    d = collections.OrderedDict(items)
    d._metadata = collections.OrderedDict([("", {"version": 1})])  # what nn.Module.state_dict() attaches
    return d


def f16(x):
    return struct.pack("<e", x)


def make_good():
    s0 = Storage("0", torch.FloatStorage, 24, struct.pack("<24f", *[i + 0.25 for i in range(24)]))
    s1 = Storage("1", torch.LongStorage, 2, struct.pack("<2q", 123456789012, -7))
    s2 = Storage("2", torch.HalfStorage, 4, b"".join(f16(x) for x in [1.0, -2.0, 0.5, 65504.0]))
    sd = state_dict([
        ("model.full", Tensor(s0, 0, (4, 6), (6, 1))),  # the whole storage
        ("tail", Tensor(s0, 12, (12,), (1,))),  # shares it, contiguous from an offset
        ("view_t", Tensor(s0, 3, (2, 3), (1, 4))),  # strided (transposed) view with an offset
        ("bcast", Tensor(s0, 5, (3, 2), (0, 1))),  # expanded: stride 0
        ("param", Parameter(Tensor(s0, 20, (2, 2), (2, 1)))),
        ("counter", Tensor(s1, 1, (), ())),  # scalar
        ("train_metrics.num-tokens.count", Tensor(s1, 0, (), ())),
        ("half", Tensor(s2, 0, (4,), (1,))),
        ("layers.0.mixer.rotary_emb.inv_freq", Tensor(s0, 0, (2,), (1,))),
        ("empty", Tensor(s0, 24, (0, 3), (3, 1))),
        ("step", 1000),  # plain numbers are skipped
        ("lr", 0.001),
        ("flag", True),
    ])
    torch_zip("good_views.pt", dumps(sd, 2), [s0, s1, s2], folder="good_views")
    # The same content with protocol 4 opcodes (FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE).
    torch_zip("good_proto4.pt", dumps(sd, 4), [s0, s1, s2], folder="archive")
    return sd, [s0, s1, s2]


def make_bad_torch(good_sd, good_storages):
    s0 = Storage("0", torch.FloatStorage, 12, struct.pack("<12f", *range(12)))
    t = Tensor(s0, 0, (3, 4), (4, 1))

    # Code execution attempts: the reader must refuse the global before anything is built.
    os_system = b"\x80\x02cos\nsystem\nX\x0a\x00\x00\x00echo pwnedq\x00\x85q\x01R."
    torch_zip("pickle_os_system.pt", os_system)
    # Protocol 3 names builtins as Python 3 does; protocol 2 maps them to Python 2's __builtin__.
    torch_zip("pickle_builtins_eval.pt", dumps(state_dict([("w", t), ("x", Evil(eval, ("1+1",)))]), 3), [s0])
    torch_zip("pickle_posix_system.pt", dumps(Evil(os.system, ("echo pwned",))))
    torch_zip("pickle_subprocess.pt", dumps(Evil(subprocess.check_output, (["echo", "pwned"],)), 4))
    torch_zip("pickle_getattr.pt", dumps(state_dict([("w", t), ("x", Evil(getattr, ("abc", "upper")))])), [s0])

    # Malformed pickles.
    torch_zip("pickle_unknown_opcode.pt", b"\x80\x02}q\x00(X\x01\x00\x00\x00a\xff.")
    good_pkl = dumps(good_sd, 2)
    cut = good_pkl.index(b"model.full") + 4  # inside the first key's BINUNICODE
    torch_zip("pickle_truncated.pt", good_pkl[:cut], good_storages)
    torch_zip("pickle_memo_missing.pt", b"\x80\x02h\x07.")
    torch_zip("pickle_stack_underflow.pt", b"\x80\x02R.")
    torch_zip("pickle_top_not_dict.pt", dumps([t]), [s0])
    torch_zip("pickle_value_not_tensor.pt", dumps(state_dict([("w", t), ("name", "hello")])), [s0])

    # Storage problems.
    s1_missing = Storage("1", torch.FloatStorage, 12, b"")
    torch_zip("missing_storage.pt", dumps(state_dict([("w", t), ("v", Tensor(s1_missing, 0, (12,), (1,)))])), [s0])
    short = Storage("0", torch.FloatStorage, 16, struct.pack("<8f", *range(8)))
    torch_zip("short_storage.pt", dumps(state_dict([("w", Tensor(short, 0, (16,), (1,)))])), [short])
    torch_zip("view_beyond_storage.pt", dumps(state_dict([("w", Tensor(s0, 2, (3, 4), (4, 1)))])), [s0])
    # Stride 0 lets a 12-element storage describe 2^40 elements: materialising it must be refused.
    torch_zip("view_expand_too_large.pt", dumps(state_dict([("w", Tensor(s0, 0, (1 << 20, 1 << 20), (0, 0)))])), [s0])
    huge = Storage("0", torch.LongStorage, 1 << 62, b"\0" * 8)
    torch_zip("storage_numel_overflow.pt", dumps(state_dict([("w", Tensor(huge, 0, (1,), (1,)))])), [huge])

    # Archive problems.
    sd = dumps(state_dict([("w", t)]))
    torch_zip("big_endian.pt", sd, [s0], byteorder="big")
    torch_zip("no_data_pkl.pt", sd, [s0], with_pkl=False)
    with open(os.path.join(OUT, "good_views.pt"), "rb") as f:
        whole = f.read()
    write("truncated_zip.pt", whole[: len(whole) // 2])

    # Neither format.
    write("not_a_checkpoint.bin", b"hello, this is not a checkpoint\n")
    write("legacy_torch.bin", b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    make_safetensors()
    good_sd, good_storages = make_good()
    make_bad_torch(good_sd, good_storages)
    print(f"wrote {len([n for n in os.listdir(OUT) if not n.endswith('.py')])} files to {OUT}")
