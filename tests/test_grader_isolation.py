"""Unit tests of the grader's isolation layer: the restricted unpickler, the worker proxy, the guard.

Fast (one worker process per test module); the end-to-end attacks are in test_grader_adversarial.py.
"""
from __future__ import annotations

import os
import pickle
import textwrap
import warnings

import numpy as np
import pytest

from tinyattn.grading import wire
from tinyattn.grading.proxy import (ForbiddenImplementation, RemoteModule, RemoteObject, Worker, WorkerCrashed,
                                    WorkerTimeout, call_many, scenario)

STUDENT = textwrap.dedent('''
    import os, warnings
    import numpy as np

    class Box:
        def __init__(self, v):
            self.v = np.asarray(v, dtype=float)
        def __eq__(self, other):
            return True                                   # lies: the judge must not ask it
        def __mul__(self, other):
            return Box(self.v * (other.v if isinstance(other, Box) else other))
        def total(self):
            return float(self.v.sum())

    def double(x):
        return 2 * x

    def bad(x):
        raise ValueError(f"x must be positive, got {x}")

    def warn(x):
        warnings.warn("careful", RuntimeWarning)
        return x

    def fill(buf, value):
        buf[...] = value
        return None

    def view(x):
        return x[:, ::2]

    def read(path):
        return open(path).read()

    def write(path):
        open(path, "w").write("pwned")

    def spin():
        while True:
            pass

    def die():
        os._exit(3)

    def softmax(x, axis=-1):
        from tinyattn.functional import softmax as lib
        return lib(x, axis=axis).data
    ''')


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("iso")
    student, secret = root / "student", root / "secret"
    student.mkdir(), secret.mkdir()
    (student / "ch01_attention.py").write_text(STUDENT)     # named like ch01 so the forbidden map applies
    (secret / "answer.txt").write_text("42")
    worker = Worker(call_timeout=2.0, settings={"deny_read": [str(secret)]})
    yield worker, RemoteModule(worker, str(student), "ch01_attention"), root
    worker.close()


def _remote_sum(box):                 # a trusted scenario helper (module level: sent by reference)
    return box.total()


def test_safe_unpickler_builds_plain_data_only():
    data = pickle.dumps(("ok", {"a": np.arange(6.0).reshape(2, 3)[:, ::2].copy(), "b": [np.float32(1.5), 2j]},
                         np.dtype("int16"), {1, 2}), protocol=5)
    out = wire.safe_loads(data, lambda rid, t: None)
    assert out[1]["a"].tolist() == [[0.0, 2.0], [3.0, 5.0]] and out[1]["b"][0].dtype == np.float32
    for hostile in (pickle.dumps(os.system, protocol=5), pickle.dumps(np.array([object()], dtype=object)),
                    pickle.dumps(np.ma.masked_array([1.0])), b"cos\nsystem\n(S'true'\ntR."):
        with pytest.raises(pickle.UnpicklingError):
            wire.safe_loads(hostile, lambda rid, t: None)


def test_calls_return_plain_data_errors_keep_their_type_and_warnings_are_forwarded(setup):
    _, ex, _ = setup
    x = np.arange(5.0)
    got = ex.double(x)
    assert type(got) is np.ndarray and np.array_equal(got, 2 * x)
    assert ex.view(np.arange(12.0).reshape(3, 4)).tolist() == [[0, 2], [4, 6], [8, 10]]
    with pytest.raises(ValueError, match="x must be positive, got -1"):
        ex.bad(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning, match="careful"):
            ex.warn(1)


def test_in_place_changes_come_back_and_remote_objects_cannot_vouch_for_themselves(setup):
    _, ex, _ = setup
    buf = np.zeros((2, 3))
    ex.fill(buf, 7.0)
    assert (buf == 7.0).all()
    a, b = ex.Box([1.0, 2.0]), ex.Box([3.0, 4.0])
    assert isinstance(a, RemoteObject) and a.remote_type.endswith(".Box")
    assert a != b and not (a == 5)                             # Box.__eq__ lies; it is never asked
    prod = a * b
    assert prod.total() == 11.0 and scenario(_remote_sum, prod) == 11.0
    assert call_many(ex.double, [(1,), (2,), (3,)]) == [2, 4, 6]


def test_guard_denies_reading_secrets_and_writing_outside_and_flags_it(setup):
    worker, ex, root = setup
    worker.flags = []
    with pytest.raises(PermissionError):
        ex.read(str(root / "secret" / "answer.txt"))
    with pytest.raises(PermissionError):
        ex.write(str(root / "student" / "pwned.txt"))
    assert not (root / "student" / "pwned.txt").exists()
    assert any("answer.txt for reading" in f for f in worker.flags), worker.flags
    assert any("pwned.txt for writing" in f for f in worker.flags), worker.flags


def test_forbidden_library_call_fails_the_call_and_is_flagged(setup):
    worker, ex, _ = setup
    worker.flags = []
    with pytest.raises(ForbiddenImplementation, match="FORBIDDEN"):
        ex.softmax(np.ones(3))
    assert any(f.startswith("forbidden: softmax called tinyattn.functional") for f in worker.flags)


def test_timeouts_and_crashes_cost_one_call_and_the_worker_restarts(setup):
    _, ex, _ = setup
    with pytest.raises(WorkerTimeout):
        ex.spin()
    assert ex.double(2) == 4
    with pytest.raises(WorkerCrashed, match="exit status 3"):
        ex.die()
    assert ex.double(3) == 6
