"""The judge <-> worker wire format: length-prefixed pickles, restricted on the judge's side.

Requests (judge -> worker) are ordinary pickles: the worker trusts the judge. Replies (worker -> judge)
come from a process that runs student code, so the judge reads them with :class:`SafeUnpickler`, which
builds only plain data -- ``None``/bool/int/float/complex/str/bytes, tuples, lists, dicts, sets,
NumPy dtypes, scalars and arrays of non-object dtype -- and *references* to objects that stay in the
worker (``persistent_load``: the judge gets a :class:`~tinyattn.grading.proxy.RemoteObject`, never the
object). A forged reply therefore cannot run code in the judge: at worst it is a wrong answer.
"""
from __future__ import annotations

import io
import os
import pickle
import struct

import numpy as np

class WorkerCrashed(AssertionError):
    """The worker died or sent garbage: the test fails (its points are lost), grading goes on."""


class WorkerTimeout(AssertionError):
    """A call into student code ran past the per-call limit; the worker was killed."""


class ForbiddenImplementation(AssertionError):
    """Student code called the library's (or the solutions') implementation of the exercise itself."""


class StudentError(Exception):
    """An exception from student code whose type is not one the judge re-raises as-is."""


HEADER = struct.Struct("!Q")
MAX_REPLY = 1 << 31                        # 2 GiB: larger is a broken or hostile worker

#: exception types a worker may ask the judge to raise (student errors keep their type, so
#: ``pytest.raises(ValueError)`` still works); anything else arrives as WorkerError
EXCEPTIONS = {e.__name__: e for e in (
    ValueError, TypeError, IndexError, KeyError, LookupError, NotImplementedError, ZeroDivisionError,
    ArithmeticError, OverflowError, FloatingPointError, RuntimeError, RecursionError, AttributeError,
    AssertionError, NameError, UnboundLocalError, MemoryError, PermissionError, ImportError,
    ModuleNotFoundError, StopIteration, SyntaxError, IndentationError, OSError, FileNotFoundError,
    UnicodeError, BufferError, NotADirectoryError)}
#: warning categories forwarded to the judge (so ``warnings.simplefilter("error")`` tests still work)
WARNINGS = {w.__name__: w for w in (RuntimeWarning, UserWarning, DeprecationWarning, FutureWarning,
                                    np.exceptions.ComplexWarning if hasattr(np, "exceptions") else Warning)}


def send(fd: int, obj, pickler_factory=None) -> None:
    buf = io.BytesIO()
    (pickler_factory or (lambda f: pickle.Pickler(f, protocol=5)))(buf).dump(obj)
    data = buf.getvalue()
    _write_all(fd, HEADER.pack(len(data)) + data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def read_exact(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the worker closed its pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> bytes:
    (n,) = HEADER.unpack(read_exact(fd, HEADER.size))
    if n > MAX_REPLY:
        raise EOFError(f"the worker sent a {n}-byte frame")
    return read_exact(fd, n)


# ---- the judge's restricted unpickler --------------------------------------------------------------

def _dtype(*args):
    dt = np.dtype(*args)
    if dt.hasobject:
        raise pickle.UnpicklingError("object dtypes are not accepted from the worker")
    return dt


def _frombuffer(buf, dtype, shape, order, axis_order=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("object arrays are not accepted from the worker")
    array = np.frombuffer(bytes(buf), dtype=dtype).copy()
    if order == "K" and axis_order is not None:
        return array.reshape(shape, order="C").transpose(axis_order)
    return array.reshape(shape, order="F" if order == "F" else "C")


def _scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise pickle.UnpicklingError("only plain NumPy scalars are accepted from the worker")
    if len(data) != dtype.itemsize:
        raise pickle.UnpicklingError("NumPy scalar of the wrong size")
    return np.frombuffer(data, dtype=dtype)[0].copy()


SAFE_GLOBALS = {
    ("numpy", "dtype"): _dtype,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("builtins", "complex"): complex,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "bytearray"): bytearray,
}


class Token:
    """An inert stand-in for a worker-side object while unpickling (no __call__, no __dict__, no state)."""
    __slots__ = ("rid", "type_name")

    def __init__(self, rid: int, type_name: str):
        self.rid, self.type_name = rid, type_name


class SafeUnpickler(pickle.Unpickler):
    """Unpickle a worker's reply: plain data only; ``("ref", id, type_name)`` ids become remote objects."""

    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data))

    def find_class(self, module: str, name: str):
        try:
            return SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"the worker sent a {module}.{name} object, which the grader "
                                         f"does not accept (only arrays, numbers, strings and "
                                         f"containers of them)") from None

    def persistent_load(self, pid):
        if (isinstance(pid, tuple) and len(pid) == 3 and pid[0] == "ref" and type(pid[1]) is int
                and type(pid[2]) is str):
            return Token(pid[1], pid[2][:200])
        raise pickle.UnpicklingError("malformed reference from the worker")


def safe_loads(data: bytes, make_ref):
    """Unpickle ``data`` restrictedly, then replace each Token by ``make_ref(rid, type_name)``."""
    return _resolve(SafeUnpickler(data).load(), make_ref, 0)


def _resolve(obj, make_ref, depth: int):
    if depth > 200:
        raise pickle.UnpicklingError("reply nested too deeply")
    t = type(obj)
    if t is Token:
        return make_ref(obj.rid, obj.type_name)
    if t in (tuple, list, set, frozenset):
        return t(_resolve(x, make_ref, depth + 1) for x in obj)
    if t is dict:
        return {_resolve(k, make_ref, depth + 1): _resolve(v, make_ref, depth + 1) for k, v in obj.items()}
    return obj
