"""auto-denoise's Deep Image Prior (3D U-Net, 20 % held-out voxels pick the best state).

Run in benchmarks/.venvs/autodenoise: python autoden_dip.py IN OUT THREADS EPOCHS
It takes no noise level.
"""

import sys
import time

import autoden as ad
import nibabel as nib
import numpy as np
import torch

torch.set_num_threads(int(sys.argv[3]))
torch.manual_seed(0)
np.random.seed(0)
source = nib.load(sys.argv[1])
volume = np.asarray(source.dataobj, np.float32)
start = time.perf_counter()
net = ad.NetworkParamsUNet(n_features=16, n_dims=3)
dip = ad.DIP(model=net, reg_val=5e-7, device="cpu", verbose=False)
inp, tgt, mask = dip.prepare_data(volume)
dip.train(inp, tgt, mask, epochs=int(sys.argv[4]), learning_rate=1e-3)
out = dip.infer(inp).astype(np.float32)
print(f"seconds {time.perf_counter() - start:.3f}")
nib.save(nib.Nifti1Image(out, source.affine), sys.argv[2])
