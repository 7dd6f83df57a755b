"""The worker's guard: an audit hook and a profile hook, installed before any student code runs.

Audit hook (``sys.addaudithook``, which cannot be removed), in the worker only:

- opening anything under the denied folders (``solutions/`` unless it is the folder being graded, the
  class's other submissions) -> PermissionError;
- opening a file for writing, creating, renaming or deleting files anywhere outside the worker's own
  temporary folder -> PermissionError (so no forged logs, no edits to tests/, solutions/ or the grader);
- starting processes (subprocess, os.system, exec*, spawn*, fork), sending signals (os.kill,
  pthread_kill), sockets, ``ctypes`` loading/pointer tricks, ``gc.get_objects``/``get_referrers``
  (walking into the grader's own objects), and replacing the profile/trace hook -> PermissionError.

Each denial is recorded as a flag ("denied: open /repo/solutions/ch01_attention.py for reading") that
travels to the judge and into the report. The profile hook watches calls: when a function listed in
:mod:`tinyattn.grading.forbidden` for the exercise currently on the stack is called, the call is
recorded as "forbidden: ..." and the judge fails that test.

Limits (see docs/INSTRUCTORS.md): this is a guard inside a Python process, not a sandbox. It stops the
usual ways to cheat and records them, but code determined to subvert the interpreter itself can get
around it; what keeps the score honest regardless is that the judge only ever compares plain data in
its own process. For a real class run each submission in its own container as well.
"""
from __future__ import annotations

import functools
import inspect
import os
import sys
import types

DENY_ALWAYS = {
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "os.kill", "os.killpg", "signal.pthread_kill", "pty.spawn", "os.startfile",
    "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.addressof", "ctypes.cdata", "ctypes.cdata/buffer",
    "ctypes.string_at", "ctypes.wstring_at", "ctypes.call_function", "ctypes.PyObj_FromPtr",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    "sys.setprofile", "sys.settrace", "sys.remote_exec",
}
WRITE_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.truncate", "os.chmod", "os.chown",
                "os.symlink", "os.link", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile",
                "os.chflags", "os.lchflags", "os.setxattr", "os.removexattr"}


def configure(settings: dict):
    """Install the audit hook (once); return ``(take_flags, register_module, trusted_import)``. ``settings``: tmp (the
    worker's folder, writable), deny_read (folders nothing may read), allow (events of DENY_ALWAYS to
    permit, e.g. ctypes for a helper that runs Numba's real CUDA compiler), preload (default True)."""
    if settings.get("preload", True):
        _preload()
    allowed = frozenset(settings.get("allow", ()))
    real = os.path.realpath
    tmp = real(settings["tmp"])
    deny_read = tuple(real(p) for p in settings.get("deny_read", ()) if p)
    flags: list[str] = []
    installing = False

    def inside(path: str, roots: tuple) -> bool:
        return any(path == r or path.startswith(r + os.sep) for r in roots)

    def deny(what: str):
        if len(flags) < 200 and f"denied: {what}" not in flags:
            flags.append(f"denied: {what}")
        raise PermissionError(f"the grader does not allow this: {what}")

    def audit(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flag = args
            if isinstance(path, int) or path is None:
                return
            try:
                p = real(os.fsdecode(path))
            except (TypeError, ValueError):
                return
            writing = (mode is not None and any(c in str(mode) for c in "wax+")) or \
                      (isinstance(flag, int) and flag & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC
                                                          | os.O_APPEND))
            if inside(p, deny_read):
                deny(f"open {p} for reading")
            if writing and not inside(p, (tmp,)) and p != os.devnull:
                deny(f"open {p} for writing")
            if p.startswith("/proc/") and not p.startswith(("/proc/self/", f"/proc/{os.getpid()}/")):
                if not p.startswith(("/proc/cpuinfo", "/proc/meminfo", "/proc/stat")):
                    deny(f"open {p}")
        elif event in DENY_ALWAYS and event not in allowed and not (trusted and event.startswith("ctypes.")):
            if event == "sys.setprofile" and installing:
                return
            deny(event)
        elif event in WRITE_EVENTS:
            for a in args:
                if isinstance(a, (str, bytes, os.PathLike)):
                    p = real(os.fsdecode(a))
                    if not inside(p, (tmp,)):
                        deny(f"{event} {p}")

    # ---- the forbidden-implementation watch ----
    from .forbidden import FORBIDDEN, resolve
    watch: dict[object, set] = {}            # forbidden code -> {student exercise code}
    named: dict[object, list] = {}           # forbidden code -> [(student file, exercise name, dotted)]
    exercise_of: dict[object, tuple] = {}    # student exercise code -> (exercise name, student file)

    def register(module_name: str, module) -> None:
        """After a student module is imported: which of its functions may not call which code."""
        path = real(getattr(module, "__file__", "") or "")
        for exercise, dotted_names in FORBIDDEN.get(module_name, {}).items():
            obj = getattr(module, exercise, None)
            try:
                code = getattr(inspect.unwrap(obj), "__code__", None) if obj is not None else None
            except Exception:                # noqa: BLE001 - a hostile object
                code = None
            for dotted in dotted_names:
                target = resolve(dotted)
                if target is None:
                    continue
                if code is not None:
                    watch.setdefault(target, set()).add(code)
                    exercise_of[code] = (exercise, dotted)
                named.setdefault(target, []).append((path, exercise, dotted))
        for exercise in FORBIDDEN.get(module_name, {}):
            obj = getattr(module, exercise, None)
            if isinstance(obj, types.FunctionType):
                setattr(module, exercise, watched(obj))

    def set_profile(fn) -> None:
        nonlocal installing
        installing = True
        try:
            sys.setprofile(fn)
        finally:
            installing = False

    def watched(fn):
        """``fn`` with the profile hook on while it runs (only exercise calls pay for the watch)."""
        @functools.wraps(fn)
        def guarded(*args, **kwargs):
            if not depth:
                set_profile(profile)
            depth.append(1)
            try:
                return fn(*args, **kwargs)
            finally:
                depth.pop()
                if not depth:
                    set_profile(None)
        return guarded

    def profile(frame, event, arg):
        if event != "call":
            return
        code = frame.f_code
        targets = watch.get(code)
        names = named.get(code)
        if targets is None and names is None:
            return
        f = frame.f_back
        while f is not None:
            c = f.f_code
            if targets is not None and c in targets:
                exercise, dotted = exercise_of[c]
                _flag(f"forbidden: {exercise} called {dotted}")
                return
            if names is not None:
                for path, exercise, dotted in names:
                    if c.co_name == exercise and real(c.co_filename) == path:
                        _flag(f"forbidden: {exercise} called {dotted}")
                        return
            f = f.f_back

    def _flag(what: str) -> None:
        if what not in flags:
            flags.append(what)

    def take() -> list[str]:
        out = list(flags)
        flags.clear()
        return out

    def trusted_import(names) -> None:
        """Import libraries that load native code through ctypes (Numba) on the worker's behalf."""
        nonlocal trusted
        trusted = True
        try:
            for name in names:
                try:
                    __import__(name)
                except Exception:            # noqa: BLE001 - optional libraries
                    pass
        finally:
            trusted = False

    depth: list = []
    trusted = False
    sys.addaudithook(audit)
    return take, register, trusted_import


def prelude(tmp: str, deny_read: list[str], allow: tuple[str, ...] = ()) -> str:
    """Python source that installs this guard first thing in a helper process (``python -c prelude + script``)."""
    settings = {"tmp": str(tmp), "deny_read": [str(d) for d in deny_read], "allow": list(allow), "preload": False}
    return f"from tinyattn.grading.guard import configure as _guard\n_guard({settings!r})\ndel _guard\n"


def _preload() -> None:
    """Import what every graded module needs before the guard is up (Numba is imported on demand, by
    the worker, through ``trusted_import``: it costs 0.4 s and only chapter 07 uses it)."""
    import numpy  # noqa: F401
    import tinyattn  # noqa: F401

