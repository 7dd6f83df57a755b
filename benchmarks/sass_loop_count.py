"""Static SASS counts of a kernel's main loop: instructions per HMMA (no device needed).

    python benchmarks/sass_loop_count.py CUBIN KERNEL [KERNEL ...]

Disassembles CUBIN with nvdisasm (``$NVDISASM`` or the first nvdisasm / cuobjdump on PATH), finds in each
KERNEL the outermost loop that contains HMMA (the widest backward branch ``BRA`` to an earlier label) and
prints the instructions in it by class. Static counts: every path of the loop body counted once (e.g. the
masked and unmasked copies of a tile step both appear), so compare kernels built the same way.
Instructions predicated on ``!PT`` (never executed: ptxas pads with ``@!PT LDS RZ, [RZ]``) are not counted
(since session 21; earlier NOTES counts include them: 3 per loop in the d = 64 / 128 forward kernels).
"""
from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys

CLASSES = [("HMMA", "HMMA"), ("LDSM", "ldmatrix"), ("LDS", "shared load"), ("STS", "shared store"),
           ("RED", "global red"), ("SHFL", "shuffle"), ("MUFU", "exp2"), ("LDGSTS", "cp.async"),
           ("BAR", "barrier"), ("BRA", "branch")]
INT_OPS = ("IADD", "IMAD", "LOP3", "SHF", "LEA", "VIADD", "SEL", "ISETP", "IABS", "VIMNMX", "MOV", "PRMT")


def disassemble(cubin: str) -> str:
    tool = os.environ.get("NVDISASM") or shutil.which("nvdisasm")
    if tool:
        return subprocess.run([tool, "-c", cubin], capture_output=True, text=True, check=True).stdout
    tool = shutil.which("cuobjdump")
    if not tool:
        raise SystemExit("need nvdisasm or cuobjdump (set NVDISASM=path)")
    return subprocess.run([tool, "-sass", cubin], capture_output=True, text=True, check=True).stdout


def kernel_lines(sass: str, name: str) -> list[str]:
    m = re.search(rf"^\.text\.{re.escape(name)}:\n(.*?)(?=^//-----|\Z)", sass, re.M | re.S)
    if not m:
        m = re.search(rf"Function : {re.escape(name)}\n(.*?)(?=Function :|\Z)", sass, re.S)   # cuobjdump
    if not m:
        raise SystemExit(f"kernel {name} not found")
    return m.group(1).splitlines()


def main_loop(lines: list[str]) -> list[str]:
    """Instructions of the widest loop (label .. backward BRA to it) that contains an HMMA."""
    instr, labels = [], {}
    for ln in lines:
        lab = re.match(r"^\s*(\.L_x_\d+):", ln)
        if lab:
            labels[lab.group(1)] = len(instr)
        elif re.match(r"^\s*/\*[0-9a-f]{4,}\*/", ln):
            instr.append(ln.split("*/", 1)[1].strip())
    best = None
    for i, ins in enumerate(instr):
        b = re.search(r"\bBRA\b.*`?\((\.L_x_\d+)\)", ins)
        if b and labels.get(b.group(1), i + 1) <= i:
            lo = labels[b.group(1)]
            if any("HMMA" in x for x in instr[lo:i + 1]) and (best is None or i - lo > best[1] - best[0]):
                best = (lo, i)
    if best is None:
        raise SystemExit("no loop with HMMA")
    return instr[best[0]:best[1] + 1]


def classify(body: list[str]) -> dict:
    c = collections.Counter()
    for ins in body:
        op = re.sub(r"^@!?U?P\w+\s+", "", ins).split()[0]
        if op == "NOP" or ins.startswith("@!PT "):
            continue
        c["total"] += 1
        for pre, name in CLASSES:
            if op.split(".")[0] == pre:
                c[name] += 1
                break
        else:
            c["integer/move" if op.split(".")[0] in INT_OPS else "other"] += 1
    return c


def main() -> None:
    cubin, names = sys.argv[1], sys.argv[2:]
    sass = disassemble(cubin)
    for n in names:
        c = classify(main_loop(kernel_lines(sass, n)))
        h = max(c["HMMA"], 1)
        parts = ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: -kv[1]) if k != "total")
        print(f"{n}: main loop {c['total']} instr, {c['HMMA']} HMMA -> {c['total'] / h:.2f} per HMMA, "
              f"integer/move {c['integer/move'] / h:.2f} per HMMA ({parts})")


if __name__ == "__main__":
    main()
