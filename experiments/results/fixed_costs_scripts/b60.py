import os
import sys
import time

from elsjax import data
from elsjax import patches as P

imgs = data.load(sys.argv[1], limit=int(sys.argv[2]) or None).images
for k in [int(a) for a in sys.argv[3:]]:
    c0, w0 = time.process_time(), time.perf_counter()
    d = P.region_dictionaries(imgs, k, P.els_regions(32, 32, k), chunk_size=1024, to_device=False)
    print(
        f"{os.environ.get('TAG')} threads={os.environ.get('ELSJAX_BUILD_THREADS', '-')} N={len(imgs)} k={k}: wall {time.perf_counter() - w0:.2f} s cpu {time.process_time() - c0:.2f} s entries {d[0].keys.shape}",
        flush=True,
    )
    del d
