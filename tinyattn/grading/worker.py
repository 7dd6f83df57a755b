"""The grading worker: ``python -m tinyattn.grading.worker`` -- the only process that runs student code.

The judge (the pytest process running ``tests/graded``) starts it with a private temporary folder as
its working directory, a minimal environment and only three file descriptors: its requests arrive on
stdin, its replies leave on stdout (framed by :mod:`tinyattn.grading.wire`), stderr goes to a log file
in its folder. Before any student code is imported the worker moves its protocol pipes off fds 0/1
(``print`` goes to the log) and installs the guard of :mod:`tinyattn.grading.guard` (an audit hook:
no reading solutions/, no writing outside its folder, no processes, signals, sockets or ctypes; a
profile hook that notices calls to the library's own implementation of the exercise being graded).

Requests (from the trusted judge, plain pickles): ``load`` a student module, ``getattr``/``setattr``,
``call`` a function (a student function, or a trusted helper of a graded test -- a "scenario" -- that
receives student objects), apply an ``op`` (``a + b``...), ``iter``/``array``/``repr`` an object,
``reset`` the object table between tests. Every reply is ``("ok", value, notes)`` or
``("err", type_name, message, traceback, notes)``; values that are not plain data stay here and travel
as ``("ref", id, type_name)``; ``notes`` carries warnings raised and guard flags.
"""
from __future__ import annotations

import importlib.util
import io
import operator
import os
import pickle
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np

from . import wire

SCALARS = (type(None), bool, int, float, complex, str, bytes, slice)


class _Ref:
    __slots__ = ("pid",)

    def __init__(self, pid: tuple):
        self.pid = pid
OPS = {"add", "sub", "mul", "truediv", "floordiv", "matmul", "pow", "mod", "neg", "pos", "abs",
       "getitem", "setitem", "len", "float", "int", "index", "lt", "le", "gt", "ge"}
BUILTIN_OPS = {"len": len, "float": float, "int": int, "index": operator.index}


class Worker:
    def __init__(self, rfd: int, wfd: int):
        self.rfd, self.wfd = rfd, wfd
        self.table: dict[int, object] = {}
        self.pinned: set[int] = set()
        self.modules: dict[tuple[str, str], object] = {}
        self.take_flags = lambda: []
        self.register = None
        self.trusted_import = lambda names: None

    # ---- references ----
    def ref(self, obj) -> tuple:
        self.table[id(obj)] = obj
        t = type(obj)
        return ("ref", id(obj), f"{getattr(t, '__module__', '?')}.{getattr(t, '__qualname__', '?')}")

    def lookup(self, pid):
        try:
            return self.table[pid[1]]
        except (KeyError, TypeError, IndexError):
            raise LookupError("the grader referred to an object the worker no longer holds") from None

    def encode(self, obj, depth: int = 0):
        """``obj`` with every value that is not plain data replaced by a reference into the table."""
        t = type(obj)
        if t in SCALARS:
            return obj
        if t is np.ndarray:
            if obj.dtype.hasobject:
                return _Ref(self.ref(obj))
            return obj if obj.flags.c_contiguous or obj.flags.f_contiguous else np.ascontiguousarray(obj)
        if isinstance(obj, np.generic) and t.__module__ == "numpy" and not isinstance(obj, np.object_):
            return obj
        if t is np.dtype and not obj.hasobject:
            return obj
        if t in (tuple, list, set, frozenset) and depth < 100:
            return t(self.encode(x, depth + 1) for x in obj)
        if t is dict and depth < 100:
            return {self.encode(k, depth + 1): self.encode(v, depth + 1) for k, v in obj.items()}
        return _Ref(self.ref(obj))

    @staticmethod
    def reply_pickler(fh):
        class ReplyPickler(pickle.Pickler):
            def persistent_id(self, obj):
                return obj.pid if type(obj) is _Ref else None

        return ReplyPickler(fh, protocol=5)

    def request_unpickler(self, data: bytes):
        worker = self

        class RequestUnpickler(pickle.Unpickler):
            def persistent_load(self, pid):
                return worker.lookup(pid)

        return RequestUnpickler(io.BytesIO(data))

    # ---- requests ----
    def load(self, folder: str, name: str):
        key = (folder, name)
        if key not in self.modules:
            path = Path(folder) / f"{name}.py"
            if not path.exists():
                raise FileNotFoundError(f"graded module {name!r} not found: expected {path}")
            if "numba" in path.read_text(errors="replace"):
                self.trusted_import(("numba", "numba.cuda"))      # its native libraries load via ctypes
            modname = f"_graded_{Path(folder).name}_{abs(hash(folder))}_{name}"
            spec = importlib.util.spec_from_file_location(modname, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[modname] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(modname, None)
                raise
            self.modules[key] = module
            if self.register is not None:
                self.register(name, module)
        module = self.modules[key]
        r = self.ref(module)
        self.pinned.add(id(module))
        return module

    def handle(self, req):
        kind = req[0]
        if kind == "load":
            return self.load(req[1], req[2])
        if kind == "init":
            sys.path[:] = [p for p in req[1] if isinstance(p, str)]
            from . import guard
            self.take_flags, self.register, self.trusted_import = guard.configure(req[2])
            return None
        if kind == "reset":
            self.table = {k: v for k, v in self.table.items() if k in self.pinned}
            return None
        if kind == "getattr":
            return getattr(req[1], req[2])
        if kind == "setattr":
            setattr(req[1], req[2], req[3])
            return None
        if kind == "delattr":
            delattr(req[1], req[2])
            return None
        if kind == "call":
            return self.call(req[1], req[2], req[3])
        if kind == "op":
            if req[1] not in OPS:
                raise ValueError(f"unknown op {req[1]!r}")
            fn = BUILTIN_OPS.get(req[1]) or getattr(operator, req[1])
            return fn(*req[2])
        if kind == "iter":
            return list(req[1])
        if kind == "array":
            return np.asarray(req[1])
        if kind == "repr":
            return repr(req[1])[:2000]
        raise ValueError(f"unknown request {kind!r}")

    def call(self, fn, args: tuple, kwargs: dict):
        """``fn(*args, **kwargs)``; arguments it changed in place (arrays, lists, dicts) are sent back in
        the reply's notes ("writeback") so the judge can update its own copies, as if the call had
        happened there (``append_kv(cache, ...)`` writes into ``cache``)."""
        before = {key: _snapshot(val) for key, val in [*enumerate(args), *kwargs.items()]
                  if type(val) in (np.ndarray, list, dict)}
        try:
            return fn(*args, **kwargs)
        finally:
            changed = {}
            for key, snap in before.items():
                val = args[key] if isinstance(key, int) else kwargs[key]
                try:
                    if not _same(snap, _snapshot(val)):
                        changed[key] = val
                except Exception:                    # noqa: BLE001 - e.g. unpicklable contents
                    pass
            self.writeback = changed

    def serve(self) -> None:
        while True:
            try:
                data = wire.read_frame(self.rfd)
            except EOFError:
                return
            recorded: list = []
            self.writeback = {}
            try:
                req = self.request_unpickler(data).load()
                if req[0] == "bye":
                    return
                with warnings.catch_warnings(record=True) as recorded:
                    warnings.simplefilter("always")
                    value = self.handle(req)
                reply = ("ok", self.encode(value), self.notes(recorded))
            except BaseException as exc:            # noqa: BLE001 - student code may raise anything
                reply = ("err", _type_name(exc), _message(exc), _traceback(exc),
                         self.notes(recorded))
            try:
                wire.send(self.wfd, reply, self.reply_pickler)
            except Exception as exc:                # noqa: BLE001 - an unpicklable value
                wire.send(self.wfd, ("err", "TypeError", f"the grader could not send back your result: "
                                     f"{_message(exc)}", "", self.notes([])), self.reply_pickler)

    def notes(self, recorded) -> dict:
        warns = [(w.category.__name__, str(w.message)[:500]) for w in (recorded or [])
                 if w.category.__name__ in wire.WARNINGS][:20]
        try:
            writeback = self.encode(self.writeback)
        except Exception:                            # noqa: BLE001
            writeback = {}
        self.writeback = {}
        return {"warnings": warns, "flags": self.take_flags(), "writeback": writeback}


def _snapshot(val):
    return val.copy() if type(val) is np.ndarray else pickle.dumps(val, protocol=5)


def _same(a, b) -> bool:
    if type(a) is np.ndarray:
        return (type(b) is np.ndarray and a.shape == b.shape and a.dtype == b.dtype
                and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    return a == b


def _type_name(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return "SystemExit"
    if isinstance(exc, KeyboardInterrupt):
        return "KeyboardInterrupt"
    for cls in type(exc).__mro__:
        if cls.__module__ == "builtins" and cls.__name__ in wire.EXCEPTIONS:
            return cls.__name__
    return "Exception"


def _message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:                                # noqa: BLE001
        text = "(unprintable)"
    return f"{type(exc).__name__}: {text}"[:2000] if _type_name(exc) != type(exc).__name__ else text[:2000]


def _traceback(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(exc))[-4000:]
    except Exception:                                # noqa: BLE001
        return ""


def main() -> None:
    rfd, wfd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)                                    # print() goes to the worker's log, not the protocol
    os.close(devnull)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), line_buffering=True)
    sys.stdin = io.StringIO("")
    if sys.path and sys.path[0] in ("", os.getcwd()):
        sys.path.pop(0)
    Worker(rfd, wfd).serve()


if __name__ == "__main__":
    main()
