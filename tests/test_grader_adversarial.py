"""Adversarial submissions: none may earn a point that the untouched stubs would not.

Each case is the untouched exercises/ folder with ONE attack added to ``ch01_attention.py`` (module-level
code, or a replacement function), graded like a class (``grade_class``: a private copy per student, one
judge pytest process per graded file, student code only in the worker). The stubs score 0 on chapter 01,
so every attack must score 0; the genuine solutions, graded the same way, must score full marks. Where
the grader can see the attempt (a denied file write, a killed parent, reading solutions/, calling the
library's own softmax) the report must carry the flag.
"""
from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from tinyattn.grading.classroom import format_flags, grade_class, write_reports
from tinyattn.grading.runner import find_test_files, protected_files

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

MARKER = "/tmp/tinyattn_adversarial_pwned"        # created only if a forged pickle ran in the judge

ATTACKS = {
    # the judge's numpy/pytest are not the worker's: patching them changes nothing that is judged
    "patch_numpy": """
        import numpy as np
        np.testing.assert_allclose = lambda *a, **k: None
        np.testing.assert_array_equal = lambda *a, **k: None
        np.allclose = lambda *a, **k: True
        np.array_equal = lambda *a, **k: True
        import tinyattn.grading.check as _c
        _c.assert_close = _c.assert_shape = _c.assert_equal = _c.check = lambda *a, **k: a[1] if len(a) > 1 else None
        def softmax(x, axis=-1):                    # garbage of the right shape: only a lying check passes it
            return np.zeros_like(x)
        def causal_mask(lq, lk):
            return np.ones((lq, lk), dtype=bool)
        def attention(q, k, v, mask=None, scale=None):
            return np.zeros((*q.shape[:-1], v.shape[-1]))
        """,
    "patch_pytest": """
        import numpy as np
        def softmax(x, axis=-1):
            return np.zeros_like(x)
        import pytest, _pytest.outcomes as _o, _pytest.runner as _r
        pytest.fail = lambda *a, **k: None
        _o.fail = lambda *a, **k: None
        _r.call_and_report = lambda item, when, log=True, **kw: None
        import builtins
        builtins.AssertionError = type("AssertionError", (Exception,), {})
        """,
    # forge the result log / pytest output: the log's path is not in the worker's environment, writes
    # outside the worker's folder are denied, and the runner keeps only HMAC-signed lines
    "forge_log": """
        import glob, json, os, tempfile
        forged = json.dumps({"event": "result", "nodeid": "x", "outcome": "passed"}) + "\\n"
        for path in glob.glob(os.path.join(tempfile.gettempdir(), "*", "grade.jsonl")) + glob.glob("/tmp/*/grade.jsonl"):
            try:
                with open(path, "a") as fh:
                    fh.write(forged)
            except OSError:
                pass
        try:
            with open(f"/proc/{os.getppid()}/environ", "rb") as fh:
                fh.read()
        except OSError:
            pass
        """,
    "fake_summary": """
        import sys
        print("tests/graded/test_ch01_attention.py ..........  [100%]\\n========== 10 passed in 0.1s ==========")
        print("SCORE: 22/22", file=sys.stderr)
        def softmax(x, axis=-1):
            print("PASSED test_softmax_matches_library_on_any_axis"); raise SystemExit(0)
        """,
    "write_tests_and_solutions": f"""
        open({str(ROOT / 'tests' / 'graded' / 'test_ch01_attention.py')!r}, "a").write("\\n# pwned\\n")
        """,
    "write_solutions": f"""
        open({str(ROOT / 'solutions' / 'ch01_attention.py')!r}, "w").write("")
        """,
    "exit_at_import": """
        import os
        os._exit(0)
        """,
    "sys_exit_in_function": """
        import sys
        def softmax(x, axis=-1):
            sys.exit(0)
        def attention(q, k, v, mask=None, scale=None):
            import os; os._exit(0)
        """,
    "kill_parent": """
        import os, signal
        os.kill(os.getppid(), signal.SIGKILL)
        """,
    "read_solutions_and_exec": f"""
        exec(open({str(ROOT / 'solutions' / 'ch01_attention.py')!r}).read())
        """,
    "import_solutions": f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        try:
            from solutions.ch01_attention import softmax
        except (ImportError, OSError):
            pass
        import importlib.util
        _spec = importlib.util.spec_from_file_location("sol", {str(ROOT / 'solutions' / 'ch01_attention.py')!r})
        _m = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(_m)
        softmax, causal_mask, attention = _m.softmax, _m.causal_mask, _m.attention
        """,
    "subprocess_solutions": f"""
        import subprocess
        subprocess.run(["cp", {str(ROOT / 'solutions' / 'ch01_attention.py')!r}, "/tmp/x.py"])
        """,
    # the library's own implementation of the very function asked for: 0 for those tests, flagged
    "call_library": """
        from tinyattn.functional import softmax as _lib_softmax
        from tinyattn.functional import scaled_dot_product_attention as _lib_sdpa
        from tinyattn.functional.attention import causal_mask as _lib_causal_mask
        def softmax(x, axis=-1):
            return _lib_softmax(x, axis=axis).data
        def causal_mask(lq, lk):
            return _lib_causal_mask(lq, lk)
        def attention(q, k, v, mask=None, scale=None):
            return _lib_sdpa(q, k, v, mask, scale=scale).data
        """,
    # a reply the judge must not unpickle: an object with a malicious __reduce__, returned normally
    # and also written as a forged frame straight onto the protocol pipe
    "malicious_pickle": f"""
        import os, pickle, struct
        class Evil:
            def __reduce__(self):
                return (os.system, ("touch {MARKER}",))
        def softmax(x, axis=-1):
            return Evil()
        def causal_mask(lq, lk):
            data = pickle.dumps(("ok", Evil(), {{}}), protocol=5)
            for fd in range(3, 12):
                try:
                    os.write(fd, struct.pack("!Q", len(data)) + data)
                except OSError:
                    pass
            return Evil()
        """,
    "hang": """
        def softmax(x, axis=-1):
            while True:
                pass
        def attention(q, k, v, mask=None, scale=None):
            import time; time.sleep(10 ** 6)
        """,
}

FLAGS = {                               # case -> substrings that must appear among its flags
    "forge_log": ["denied: open /proc/"],
    "write_tests_and_solutions": ["denied: open", "for writing"],
    "write_solutions": ["denied: open"],
    "kill_parent": ["denied: os.kill"],
    "read_solutions_and_exec": ["denied: open", "solutions/ch01_attention.py for reading"],
    "import_solutions": ["solutions/ch01_attention.py for reading"],
    "subprocess_solutions": ["denied: subprocess.Popen"],
    "call_library": ["forbidden: softmax called tinyattn.functional.activations.softmax",
                     "forbidden: attention called tinyattn.functional.attention.scaled_dot_product_attention",
                     "forbidden: causal_mask called tinyattn."],
}


def _class(tmp_path: Path) -> Path:
    subs = tmp_path / "class"
    for case, attack in ATTACKS.items():
        folder = subs / case
        shutil.copytree(ROOT / "exercises", folder, ignore=shutil.ignore_patterns("__pycache__"))
        with open(folder / "ch01_attention.py", "a", encoding="utf-8") as fh:
            fh.write("\n\n# ---- adversarial addition ----\n" + textwrap.dedent(attack))
    shutil.copytree(ROOT / "exercises", subs / "stubs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "solutions", subs / "genuine", ignore=shutil.ignore_patterns("__pycache__"))
    return subs


def test_adversarial_submissions_earn_nothing_and_are_flagged(tmp_path):
    Path(MARKER).unlink(missing_ok=True)
    before = protected_files(ROOT)
    subs = _class(tmp_path)
    files = find_test_files(ROOT / "tests" / "graded", ["ch01"])[:1]       # test_ch01_attention.py: 10 points
    scores = grade_class(subs, files, ROOT, timeout=5.0)
    write_reports(scores, tmp_path / "s.csv", tmp_path / "s.json")

    def total(name):
        return sum(r.earned for r in scores[name]), sum(r.points for r in scores[name])

    stub, full = total("stubs")
    assert full == 10 and stub == 0, f"baseline: stubs {stub}/{full}"
    assert total("genuine") == (full, full), "the genuine solutions must keep full marks under isolation:\n" + \
        "\n".join(f"{r.test}: {r.outcome} {r.message}" for r in scores["genuine"] if r.outcome != "passed")
    assert not any(r.flags for r in scores["genuine"]), [r.flags for r in scores["genuine"]]
    gained = {case: total(case)[0] for case in ATTACKS if total(case)[0] > stub}
    assert not gained, f"attacks that earned points the stubs did not: {gained}"
    for case, wanted in FLAGS.items():
        flags = format_flags(scores[case])
        for w in wanted:
            assert w in flags, f"{case}: expected a flag containing {w!r}, got {flags!r}"
    assert not Path(MARKER).exists(), "a forged pickle ran code in the judge"
    assert protected_files(ROOT) == before, "a submission changed the grader, the tests or the solutions"
    doc = json.loads((tmp_path / "s.json").read_text())
    assert "forbidden: softmax called" in " ".join(doc["call_library"]["flags"])
    assert "flags" in (tmp_path / "s.csv").read_text().splitlines()[0]
    for case in ("exit_at_import", "kill_parent", "hang"):     # graded to the end, nothing left over
        assert len(scores[case]) == len(scores["stubs"]), case
