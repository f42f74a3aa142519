"""Reading `.npz` files without unpickling: numeric and string members, and object arrays of plain strings.

    with SafeNpz(path) as npz:
        npz.keys()                 # member names without ".npy"
        npz["action$place"]        # (T,) '<U..' array, even when the file stored an object array

Why: MineRL's `rendered.npz` may store its enum actions ('none', 'dirt', ...) as object arrays, which
`np.load(..., allow_pickle=True)` restores by running pickle, so a crafted file could run any code. This reader
never calls pickle. Numeric and unicode members go through `numpy.lib.format.read_array(allow_pickle=False)`.
Object members are decoded by walking their pickle opcodes with `pickletools.genops` (a parser that executes
nothing) on a small stack machine that knows only the opcodes numpy emits for an object ndarray, refers to
callables by name without importing them, and accepts only numpy's `_reconstruct`/`ndarray`/`dtype`/`scalar`
and `_codecs.encode` as names. Elements must be str, bytes, int, float, bool, None or numpy string scalars;
anything else raises UnsafeNpzError naming the member and the reason.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class NpzFormatError(ValueError):
    """The file is not a readable npz, or a member is not a readable npy array."""


class UnsafeNpzError(NpzFormatError):
    """An object-array member holds something other than plain values; it was not unpickled."""


_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
_SCALAR = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}
_ALLOWED = _RECONSTRUCT | _SCALAR | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}
_PUSH_ARG = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8",
             "SHORT_BINSTRING", "BINSTRING", "STRING", "BININT", "BININT1", "BININT2", "INT", "LONG", "LONG1",
             "LONG4", "BINFLOAT", "FLOAT"}


@dataclass(frozen=True)
class _Name:
    module: str
    name: str


@dataclass
class _Call:
    """An inert record of `func(*args)` plus its BUILD state; nothing is ever called."""
    func: _Name
    args: tuple
    state: object = field(default=None)


_MARK = object()


def _parse_pickle(payload: bytes, member: str) -> object:
    stack: list = []
    memo: dict = {}

    def pop_mark() -> list:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is _MARK:
                items = stack[i + 1:]
                del stack[i:]
                return items
        raise UnsafeNpzError(f"{member}: malformed pickle (no MARK)")

    try:
        for op, arg, _ in pickletools.genops(payload):
            name = op.name
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                if len(stack) != 1:
                    raise UnsafeNpzError(f"{member}: malformed pickle (stack has {len(stack)} items at STOP)")
                return stack[0]
            if name in _PUSH_ARG:
                stack.append(arg)
            elif name == "NONE":
                stack.append(None)
            elif name in ("NEWTRUE", "NEWFALSE"):
                stack.append(name == "NEWTRUE")
            elif name == "MARK":
                stack.append(_MARK)
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name == "APPEND":
                value = stack.pop()
                _as_list(stack[-1], member).append(value)
            elif name == "APPENDS":
                items = pop_mark()
                _as_list(stack[-1], member).extend(items)
            elif name == "TUPLE":
                stack.append(tuple(pop_mark()))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                items = tuple(stack[-n:])
                del stack[-n:]
                stack.append(items)
            elif name in ("GLOBAL", "STACK_GLOBAL"):
                if name == "GLOBAL":
                    module, qualname = arg.split(" ", 1)
                else:
                    qualname, module = stack.pop(), stack.pop()
                if (module, qualname) not in _ALLOWED:
                    raise UnsafeNpzError(f"{member}: refusing to load a pickle that names {module}.{qualname}")
                stack.append(_Name(module, qualname))
            elif name == "REDUCE":
                args, func = stack.pop(), stack.pop()
                if not isinstance(func, _Name) or not isinstance(args, tuple):
                    raise UnsafeNpzError(f"{member}: malformed pickle (REDUCE of {type(func).__name__})")
                stack.append(_reduce(func, args, member))
            elif name == "BUILD":
                state = stack.pop()
                if not isinstance(stack[-1], _Call):
                    raise UnsafeNpzError(f"{member}: malformed pickle (BUILD on {type(stack[-1]).__name__})")
                stack[-1].state = state
            elif name in ("MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT"):
                memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                stack.append(memo[arg])
            else:
                raise UnsafeNpzError(f"{member}: pickle opcode {name} is not allowed in an object array")
    except (IndexError, KeyError, ValueError) as error:
        if isinstance(error, UnsafeNpzError):
            raise
        raise UnsafeNpzError(f"{member}: malformed pickle ({error})") from None
    raise UnsafeNpzError(f"{member}: malformed pickle (no STOP)")


def _as_list(value, member: str) -> list:
    if not isinstance(value, list):
        raise UnsafeNpzError(f"{member}: malformed pickle (APPEND to {type(value).__name__})")
    return value


def _reduce(func: _Name, args: tuple, member: str):
    if (func.module, func.name) == ("_codecs", "encode"):
        # Protocol-2 pickles spell bytes as _codecs.encode(text, 'latin1'); a pure function of its arguments.
        if len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
            return args[0].encode("latin1")
        raise UnsafeNpzError(f"{member}: unexpected _codecs.encode arguments")
    return _Call(func, args)


def _plain_value(value, member: str):
    if value is None or isinstance(value, (str, bytes, int, float, bool)):
        return value
    if isinstance(value, _Call) and (value.func.module, value.func.name) in _SCALAR:
        dtype, raw = value.args if len(value.args) == 2 else (None, None)
        if isinstance(dtype, _Call) and dtype.func.name == "dtype" and isinstance(raw, bytes):
            code = str(dtype.args[0])
            byteorder = dtype.state[1] if isinstance(dtype.state, tuple) and len(dtype.state) > 1 else "<"
            if code.startswith("U"):
                return raw.decode("utf-32-be" if byteorder == ">" else "utf-32-le").rstrip("\x00")
            if code.startswith("S"):
                return raw.rstrip(b"\x00").decode("utf-8")
    raise UnsafeNpzError(f"{member}: object array holds a {getattr(value, 'func', type(value))!r}, "
                         "not a plain string or number; refusing to unpickle it")


def _object_array(payload: bytes, shape: tuple, fortran: bool, member: str) -> np.ndarray:
    root = _parse_pickle(payload, member)
    if not (isinstance(root, _Call) and (root.func.module, root.func.name) in _RECONSTRUCT
            and isinstance(root.state, tuple) and len(root.state) == 5):
        raise UnsafeNpzError(f"{member}: object member is not a pickled numpy array")
    _, pickled_shape, dtype, _, items = root.state
    if not (isinstance(dtype, _Call) and dtype.func.name == "dtype" and str(dtype.args[0]).startswith("O")):
        raise UnsafeNpzError(f"{member}: pickled array is not an object array")
    if not isinstance(items, list) or tuple(pickled_shape) != tuple(shape) or len(items) != int(np.prod(shape)):
        raise UnsafeNpzError(f"{member}: pickled array does not match its header shape {shape}")
    values = [_plain_value(v, member) for v in items]
    if all(isinstance(v, str) for v in values) and values:
        out = np.array(values, dtype=str)
    else:
        out = np.empty(len(values), dtype=object)
        out[:] = values
    return out.reshape(shape, order="F" if fortran else "C")


class SafeNpz:
    """Lazy, pickle-free view of an npz file; members load on access."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as error:
            raise NpzFormatError(f"not a readable npz/zip file ({error})") from None
        self._members = {n[:-4]: n for n in self._zip.namelist() if n.endswith(".npy")}

    def keys(self) -> list[str]:
        return list(self._members)

    def __contains__(self, key: str) -> bool:
        return key in self._members

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._members:
            raise KeyError(key)
        try:
            data = self._zip.read(self._members[key])
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as error:
            raise NpzFormatError(f"member {key!r} cannot be read ({error})") from None
        fp = io.BytesIO(data)
        try:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                fp.seek(0)
                return np.lib.format.read_array(fp, allow_pickle=False)
            if dtype.hasobject:
                return _object_array(data[fp.tell():], shape, fortran, key)
            fp.seek(0)
            return np.lib.format.read_array(fp, allow_pickle=False)
        except NpzFormatError:
            raise
        except (ValueError, OSError, EOFError) as error:
            raise NpzFormatError(f"member {key!r} is not a valid npy array ({error})") from None

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> SafeNpz:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
