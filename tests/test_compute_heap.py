"""compute.heap.kept_heap in a process set up as a Dask worker (``MALLOC_TRIM_THRESHOLD_``):
freed arrays are reused without page faults inside, the worker's behaviour is back
outside (counted in real page faults)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from electrode_ct.compute import heap

pytestmark = pytest.mark.skipif(not heap.available() or sys.platform != "linux",
                                reason="glibc only")

SCRIPT = """
import json, resource
import numpy as np
from electrode_ct.compute.heap import kept_heap

def faults(n=100):
    # page faults of n arrays of 1 MiB (an activation's size) filled and freed in turn
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        a = np.ones(2 ** 17)
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

out = {"before": faults()}
with kept_heap():
    faults(1)
    out["inside"] = faults()
    with kept_heap():
        pass
    out["after_inner"] = faults()
out["after"] = faults()
print(json.dumps(out))
"""


def test_kept_heap_reuses_freed_pages_and_restores_on_leaving():
    src = str(Path(heap.__file__).parents[2])
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536",
           "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    f = json.loads(res.stdout)
    pages = 100 * 2**20 // 4096
    assert f["before"] > pages // 2  # every array from fresh pages
    assert f["inside"] < pages // 20
    assert f["after_inner"] < pages // 20  # the outer use still holds
    assert f["after"] > pages // 2
