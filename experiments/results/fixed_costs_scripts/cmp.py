import sys

import numpy as np

a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert sorted(a.files) == sorted(b.files)
bad = [f for f in a.files if a[f].shape != b[f].shape or a[f].dtype != b[f].dtype or a[f].tobytes() != b[f].tobytes()]
print(len(a.files), "arrays;", "bitwise identical" if not bad else f"DIFFER: {bad[:10]}")
