"""ANTs adaptive non-local means (Manjon et al. 2010), Rician model: NIfTI in, NIfTI out.

Run in benchmarks/.venvs/ants: python ants_denoise.py IN OUT THREADS
ANTs takes no noise level: it estimates it inside.
"""

import os
import sys
import time

os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = sys.argv[3]
import ants  # noqa: E402

image = ants.image_read(sys.argv[1], pixeltype="float")
start = time.perf_counter()
out = ants.denoise_image(image, p=1, r=2, noise_model="Rician")
print(f"seconds {time.perf_counter() - start:.3f}")
ants.image_write(out, sys.argv[2])
