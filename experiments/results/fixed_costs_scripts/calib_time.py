"""A conditional ELS calibration (10 classes x 4 candidate k) timed by phase: builds, compilations, evaluations."""

import json
import sys
import time

from elsjax import calibrate, data, denoisers, runs

n = int(sys.argv[1])
ds = data.load("mnist", limit=n)
net = denoisers.build("els", ds.images, 5)
timer = runs.PhaseTimer()
t0 = time.perf_counter()
cal = calibrate.calibrate(
    denoisers.Denoiser.eps,
    net,
    kind=sys.argv[2],
    train=ds.images,
    ks=[3, 5, 7, 9],
    labels=ds.labels,
    conditional=True,
    n_seeds=10,
    progress=timer,
)
wall = time.perf_counter() - t0
print(json.dumps({"N": n, "kind": sys.argv[2], "wall_s": round(wall, 2), **timer.laps(), "median": cal.median}))
