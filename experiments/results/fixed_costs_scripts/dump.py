import sys

import numpy as np

from elsjax import data, denoisers

out = {}
imgs = data.load("mnist", limit=int(sys.argv[2])).images
rng = np.random.default_rng(0)
syn = np.where(rng.uniform(size=(300, 16, 16, 1)) < 0.9, 0, rng.integers(0, 3, (300, 16, 16, 1))) / 127.5 - 1
for name, x in [("mnist", imgs), ("syn", syn.astype(np.float32)), ("float", (imgs[:200] * 0.999).astype(np.float32))]:
    for kind, ks in [("ideal", [None]), ("els", [3, 5, 9]), ("bbels", [3, 7])]:
        for k in ks:
            m = denoisers.build(kind, x, k)
            for t, tab in enumerate(m.tables):
                for f, a in zip(("keys", "aux", "values"), tab):
                    out[f"{name}_{kind}_{k}_{t}_{f}"] = np.asarray(a)
np.savez(sys.argv[1], **out)
