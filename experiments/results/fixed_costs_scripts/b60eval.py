"""60k Fashion-MNIST, k=3: one ELS dictionary build and one evaluation (compiled, warm), in one process."""

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from elsjax import data, denoisers

imgs = data.load("fashion_mnist").images
out = {"tag": os.environ.get("TAG"), "threads": os.environ.get("ELSJAX_BUILD_THREADS", "default")}
c0, w0 = time.process_time(), time.perf_counter()
m = jax.block_until_ready(denoisers.build("els", imgs, 3))
out["build_wall_s"], out["build_cpu_s"] = time.perf_counter() - w0, time.process_time() - c0
if len(sys.argv) > 1 and sys.argv[1] == "eval":
    x = jnp.asarray(np.random.default_rng(1).normal(size=(1, 32, 32, 1)), jnp.float32)
    t = jnp.full((1,), 0.5)
    jax.block_until_ready(m.score(x, t))  # compile
    w0 = time.perf_counter()
    jax.block_until_ready(m.score(x, t))
    out["eval_wall_s"] = time.perf_counter() - w0
    out["build_over_eval"] = out["build_wall_s"] / out["eval_wall_s"]
print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in out.items()}), flush=True)
