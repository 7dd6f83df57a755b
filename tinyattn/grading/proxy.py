"""The judge's side of the worker: start it, send requests, turn replies into plain data or proxies.

``RemoteModule(worker, folder, name)`` stands for a student module that lives in the worker process
(:mod:`tinyattn.grading.worker`). Attribute access, calls and arithmetic on it (and on the objects its
functions return) become requests; what comes back is either plain data (arrays, numbers, strings,
containers) -- which the graded test then compares, here, in a process that never imported the
submission -- or a :class:`RemoteObject` standing for an object that stayed in the worker (a ``Node``,
a ``Tensor``, a class). Comparisons (``==``, ``hash``, truth) of remote objects are NOT forwarded: a
student object cannot vouch for itself. Errors raised by student code are re-raised here with the same
builtin type (``ValueError``...), warnings re-emitted with the same category.

``scenario(fn, *args)`` runs a trusted helper of a graded test (a module-level function) inside the
worker, for work that must happen next to student objects (walking an autograd graph); it should
return plain data for the test to judge.
"""
from __future__ import annotations

import io
import os
import pickle
import select
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from . import wire
from .wire import ForbiddenImplementation, StudentError, WorkerCrashed, WorkerTimeout


def _env(tmp: str) -> dict:
    """Minimal environment: no grader secrets, no log path; enough to import numpy/tinyattn."""
    keep = ("PATH", "LANG", "LC_ALL", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "NUMBA_ENABLE_CUDASIM", "TINYATTN_NO_VENV", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    package_parent = str(Path(__file__).resolve().parents[2])
    env.update(HOME=tmp, TMPDIR=tmp, PYTHONPATH=package_parent, PYTHONDONTWRITEBYTECODE="1",
               PYTHONNOUSERSITE="1", PYTHONHASHSEED="0")
    return env


class Worker:
    """One worker process (started lazily, restarted after a crash or timeout)."""

    def __init__(self, call_timeout: float | None = None, settings: dict | None = None):
        self.call_timeout = call_timeout
        self.settings = dict(settings or {})
        self.proc: subprocess.Popen | None = None
        self.gen = 0
        self.refs: dict[int, RemoteObject] = {}
        self.flags: list[str] = []
        self.tmp: str | None = None
        self.last_exit: str = ""

    # ---- life cycle ----
    def start(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="tinyattn-worker-")
        log = open(os.path.join(self.tmp, "worker.log"), "wb")
        try:
            self.proc = subprocess.Popen([sys.executable, "-s", "-m", "tinyattn.grading.worker"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         cwd=self.tmp, env=_env(self.tmp), close_fds=True)
        finally:
            log.close()
        self.gen += 1
        self.refs = {}
        self.request("init", list(sys.path), dict(self.settings, tmp=self.tmp))

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.kill()
        except OSError:
            pass
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = "?"
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self.last_exit = f"exit status {code}"
        self.refs = {}

    def close(self) -> None:
        if self.proc is not None:
            try:
                wire.send(self.proc.stdin.fileno(), ("bye",))
            except OSError:
                pass
        self.kill()

    def log_tail(self, n: int = 600) -> str:
        try:
            text = Path(self.tmp, "worker.log").read_text(errors="replace") if self.tmp else ""
        except OSError:
            return ""
        return text.strip()[-n:]

    def reset(self) -> list[str]:
        """Between tests: drop the worker's objects (modules stay loaded); return this test's flags."""
        flags, self.flags = self.flags, []
        if self.proc is not None:
            try:
                self.request("reset")
            except BaseException:            # noqa: BLE001 - a dead worker is restarted on next use
                self.kill()
        self.refs = {}
        return flags

    # ---- requests ----
    def _pickler(self, fh):
        worker = self

        class RequestPickler(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, RemoteObject):
                    return ("ref", obj._remote_id(worker))
                return None

        return RequestPickler(fh, protocol=5)

    def _make_ref(self, rid: int, type_name: str) -> "RemoteObject":
        obj = self.refs.get(rid)
        if obj is None:
            obj = self.refs[rid] = RemoteObject(self, rid, type_name)
        return obj

    def request(self, *msg):
        result = self._request(msg)
        return result

    def _request(self, msg):
        if self.proc is None:
            self.start()
        buf = io.BytesIO()
        try:
            self._pickler(buf).dump(msg)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TypeError(f"the grader cannot send {msg[0]!r} arguments to the worker: {exc} (a graded "
                            f"test must pass plain data or module-level functions)") from None
        data = buf.getvalue()
        try:
            wire._write_all(self.proc.stdin.fileno(), wire.HEADER.pack(len(data)) + data)
            reply = self._read_reply()
        except (EOFError, OSError) as exc:
            self.kill()
            tail = self.log_tail()
            raise WorkerCrashed(f"your code ended the grading worker process ({self.last_exit}: {exc}); "
                                f"the test's points are lost" + (f". Its last output: {tail}" if tail else "")
                                ) from None
        except BaseException:
            self.kill()                      # a timeout (ours or pytest-timeout's) or Ctrl-C mid-call
            raise
        try:
            reply = wire.safe_loads(reply, self._make_ref)
        except Exception as exc:             # noqa: BLE001 - a forged or hostile reply
            self.kill()                      # the pipe may hold more forged frames: start afresh
            raise WorkerCrashed(f"the grading worker sent back data the grader refuses: {exc}") from None
        if msg[0] == "call" and isinstance(reply, tuple) and reply and isinstance(reply[-1], dict):
            _write_back(reply[-1].get("writeback"), msg[2], msg[3])
        return self._unpack(reply)

    def _read_reply(self) -> bytes:
        fd = self.proc.stdout.fileno()
        if self.call_timeout:
            deadline = time.monotonic() + self.call_timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    raise WorkerTimeout(f"your code ran longer than {self.call_timeout:g} s in one call "
                                        f"(an endless loop?); the grading worker was stopped")
                ready, _, _ = select.select([fd], [], [], min(left, 1.0))
                if ready:
                    break
        return wire.read_frame(fd)

    def _unpack(self, reply):
        if not (isinstance(reply, tuple) and reply and reply[0] in ("ok", "err")):
            raise WorkerCrashed("the grading worker sent a malformed reply")
        notes = reply[-1] if isinstance(reply[-1], dict) else {}
        flags = [str(f)[:300] for f in notes.get("flags", [])][:50]
        self.flags += [f for f in flags if f not in self.flags]
        for category, message in list(notes.get("warnings", []))[:20]:
            cat = wire.WARNINGS.get(category)
            if cat is not None:
                warnings.warn(str(message), cat, stacklevel=4)
        forbidden = [f for f in flags if f.startswith("forbidden:")]
        if forbidden:
            raise ForbiddenImplementation(
                f"FORBIDDEN: your code called the library's own implementation of the exercise "
                f"({forbidden[0][len('forbidden:'):].strip()}); write it yourself. This test scores 0.")
        if reply[0] == "ok" and len(reply) == 3:
            return reply[1]
        if reply[0] == "err" and len(reply) == 5:
            _, name, message, tb, _ = reply
            name, message = str(name), str(message)
            if name == "SystemExit":
                raise WorkerCrashed(f"your code called sys.exit() ({message}); the test's points are lost")
            if name == "KeyboardInterrupt":
                raise WorkerCrashed("your code raised KeyboardInterrupt")
            cls = wire.EXCEPTIONS.get(name, StudentError)
            try:
                exc = cls(message)
            except Exception:                # noqa: BLE001
                exc = StudentError(message)
            where = [ln.strip() for ln in str(tb).splitlines() if ln.strip().startswith('File "')]
            if where and cls is not NotImplementedError:          # an untouched stub says enough
                exc.__notes__ = [f"(in the grading worker, at {where[-1][:300]})"]
            raise exc
        raise WorkerCrashed("the grading worker sent a malformed reply")


def _write_back(changed, args: tuple, kwargs: dict) -> None:
    """Copy what the worker's call changed in place into the judge's own arguments (same type only)."""
    if not isinstance(changed, dict):
        return
    for key, new in changed.items():
        if isinstance(key, int) and 0 <= key < len(args):
            old = args[key]
        elif isinstance(key, str) and key in kwargs:
            old = kwargs[key]
        else:
            continue
        if type(old) is np.ndarray and type(new) is np.ndarray:
            if old.shape == new.shape and old.flags.writeable:
                old[...] = new
        elif type(old) is list and type(new) is list:
            old[:] = new
        elif type(old) is dict and type(new) is dict:
            old.clear()
            old.update(new)


# the remote-object side (re-exported: graded tests import these names from here)
from .remote import RemoteModule, RemoteObject, call_many, peak_memory, scenario  # noqa: E402

__all__ = ["Worker", "RemoteModule", "RemoteObject", "scenario", "call_many", "peak_memory", "WorkerCrashed",
           "WorkerTimeout", "ForbiddenImplementation", "StudentError"]
