"""Remote objects: the judge's handles on things that live in the grading worker.

``RemoteModule(worker, folder, name)`` stands for a student module imported in the worker; attribute
access, calls and arithmetic on it (and on what its functions return) become requests to the worker
(:class:`~tinyattn.grading.proxy.Worker`). Comparisons (``==``, ``hash``, truth) are NOT forwarded: a
student object cannot vouch for itself. Helpers for graded tests:

- ``scenario(fn, *args)``: run a trusted module-level helper ``fn`` inside the worker, next to the student
  objects among ``args`` (walking an autograd graph); it returns data the test then judges;
- ``call_many(fn, arg_tuples)``: thousands of tiny calls in one round trip;
- ``peak_memory(fn, *args)``: the call's result and the worker's peak extra memory, as the kernel counts it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .wire import WorkerCrashed


class RemoteObject:
    """An object that lives in the worker; attribute access, calls and arithmetic are forwarded."""

    __slots__ = ("_w", "_id", "_gen", "_type")
    __array_ufunc__ = None                   # ndarray * remote -> remote.__rmul__, computed remotely

    def __init__(self, worker: Worker, rid: int, type_name: str):
        object.__setattr__(self, "_w", worker)
        object.__setattr__(self, "_id", rid)
        object.__setattr__(self, "_gen", worker.gen)
        object.__setattr__(self, "_type", type_name)

    def _remote_id(self, worker: Worker) -> int:
        if worker is not self._w or self._gen != worker.gen:
            raise WorkerCrashed("this object belonged to a grading worker that was stopped (your code "
                                "crashed or timed out earlier in this test)")
        return self._id

    @property
    def remote_type(self) -> str:
        """``module.QualName`` of the worker-side object (as the worker reports it)."""
        return self._type

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__") and name not in ("__name__", "__qualname__", "__doc__"):
            raise AttributeError(name)
        return self._w.request("getattr", self, name)

    def __setattr__(self, name: str, value) -> None:
        self._w.request("setattr", self, name, value)

    def __delattr__(self, name: str) -> None:
        self._w.request("delattr", self, name)

    def __call__(self, *args, **kwargs):
        return self._w.request("call", self, args, kwargs)

    def __repr__(self) -> str:
        try:
            text = self._w.request("repr", self)
        except Exception:                    # noqa: BLE001
            text = None
        return text if isinstance(text, str) else f"<{self._type} in the grading worker>"

    def __array__(self, dtype=None, copy=None):
        arr = self._w.request("array", self)
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{self._type} did not convert to a numeric array")
        return arr.astype(dtype) if dtype is not None else arr

    def __iter__(self):
        items = self._w.request("iter", self)
        if not isinstance(items, list):
            raise TypeError(f"iterating {self._type} gave no list")
        return iter(items)

    def _op(self, name, *args):
        return self._w.request("op", name, (self, *args))

    def _rop(self, name, other):
        return self._w.request("op", name, (other, self))

    def __len__(self):
        n = self._op("len")
        if type(n) is not int or n < 0:
            raise TypeError("len() of a remote object must be a non-negative int")
        return n

    def __float__(self):
        return float(self._op("float"))

    def __int__(self):
        return int(self._op("int"))

    def __index__(self):
        return int(self._op("index"))

    def __getitem__(self, key):
        return self._op("getitem", key)

    def __setitem__(self, key, value):
        self._op("setitem", key, value)

    def __neg__(self):
        return self._op("neg")

    def __pos__(self):
        return self._op("pos")

    def __abs__(self):
        return self._op("abs")

    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other


def _binary(name):
    def op(self, other):
        return self._op(name, other)

    def rop(self, other):
        return self._rop(name, other)

    return op, rop


for _name in ("add", "sub", "mul", "truediv", "floordiv", "matmul", "pow", "mod"):
    _op, _rop = _binary(_name)
    setattr(RemoteObject, f"__{_name}__", _op)
    setattr(RemoteObject, f"__r{_name}__", _rop)


class RemoteModule(RemoteObject):
    """A student module in the worker, reloaded by (folder, name) after a worker restart."""

    __slots__ = ("_folder", "_name")

    def __init__(self, worker: Worker, folder: str, name: str):
        object.__setattr__(self, "_folder", folder)
        object.__setattr__(self, "_name", name)
        ref = worker.request("load", folder, name)
        RemoteObject.__init__(self, worker, ref._id, ref._type)

    def _remote_id(self, worker: Worker) -> int:
        if worker is self._w and self._gen != worker.gen:          # restarted: import it again
            ref = worker.request("load", self._folder, self._name)
            object.__setattr__(self, "_id", ref._id)
            object.__setattr__(self, "_gen", worker.gen)
        return RemoteObject._remote_id(self, worker)

    @property
    def __file__(self) -> str:
        """The submission's file as the judge knows it (not whatever the module claims)."""
        return str(Path(self._folder) / f"{self._name}.py")

    def __repr__(self) -> str:
        return f"<student module {self._name} from {self._folder} (in the grading worker)>"


def _vm(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {key} in /proc/{pid}/status")


def peak_memory(fn: RemoteObject, *args, **kwargs):
    """``(fn(*args, **kwargs), peak extra bytes)``, the peak measured by the kernel on the worker process
    (``VmHWM`` after resetting it through ``/proc/PID/clear_refs``), so student code cannot fake it.
    Linux only; elsewhere (or if /proc is not writable) falls back to the worker's own tracemalloc."""
    worker = fn._w
    if worker.proc is None:
        worker.start()
    pid = worker.proc.pid
    try:
        base = _vm(pid, "VmRSS")
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        if _vm(pid, "VmHWM") > base + (1 << 20):
            raise OSError("VmHWM was not reset")
    except OSError:
        return scenario(_traced_call, fn, args, kwargs)
    result = fn(*args, **kwargs)
    return result, max(0, _vm(pid, "VmHWM") - base)


def _traced_call(fn, args, kwargs):
    import tracemalloc
    tracemalloc.start()
    try:
        out = fn(*args, **kwargs)
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def call_many(fn: RemoteObject, arg_tuples: list) -> list:
    """``[fn(*a) for a in arg_tuples]`` evaluated in the worker in ONE round trip (thousands of tiny calls)."""
    return scenario(_map_calls, fn, list(arg_tuples))


def _map_calls(fn, arg_tuples):
    return [fn(*a) for a in arg_tuples]


def scenario(fn, *args, **kwargs):
    """Run the trusted module-level function ``fn(*args, **kwargs)`` inside the worker that holds the
    remote objects among ``args``; return its (plain-data or remote) result."""
    for a in (*args, *kwargs.values()):
        if isinstance(a, RemoteObject):
            return a._w.request("call", fn, args, kwargs)
    raise TypeError("scenario() needs at least one remote object (e.g. the student module) argument")
