"""Checkpoint and resume: SIGTERM saves and exits 143, SIGKILL loses only the steps since the
last save, the same command resumes and gives the uninterrupted output on the CPU, and a
checkpoint from another input or other settings is refused with one line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
from scipy.ndimage import gaussian_filter

from conftest import digest, run_cli
from dipmed.phantom import add_rician_noise, mr_phantom
from dipmed.restoration.runtime.checkpoint import SUFFIX, Checkpoint

SETTINGS = "checkpoint_s: 0\nguided: {members: 2, iterations: 8, recorruptions: 2}\n"


def _command(noisy, out, config, *extra):
    return [sys.executable, "-m", "dipmed", extra[0] if extra else "denoise", str(noisy), str(out),
            "--config", str(config), "--threads", "1", "--seed", "3", *extra[1:]]  # fmt: skip


def _run(noisy, out, config, *extra):
    done = subprocess.run(_command(noisy, out, config, *extra), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def _interrupt(noisy, out, config, key: str, sig: int, *extra, counter="step"):
    """Start the command, wait until the checkpoint holds `key` at step >= 5, signal it."""
    path = out.with_name(out.name + SUFFIX)
    proc = subprocess.Popen(_command(noisy, out, config, *extra), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists():
            state = Checkpoint(path, "").get(key)
            if state is not None and state[counter] >= 5:
                proc.send_signal(sig)
                break
        time.sleep(0.02)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err, path


def test_sigterm_then_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    clean = gaussian_filter(mr_phantom((26, 24, 16)), 1.0)
    noisy = tmp_path / "noisy.nii.gz"
    image = add_rician_noise(clean, 0.06 * clean.max(), np.random.default_rng(5))
    nib.save(nib.Nifti1Image(image.astype(np.float32), np.eye(4)), noisy)
    config = tmp_path / "quick.yaml"
    config.write_text(SETTINGS)
    plain = tmp_path / "plain.nii.gz"
    _run(noisy, plain, config)
    out = tmp_path / "resumed.nii.gz"
    code, err, path = _interrupt(noisy, out, config, "member0-fit", signal.SIGTERM)
    assert code == 143 and path.exists() and not out.exists()
    last = err.strip().splitlines()[-1]
    assert last.startswith("dipmed: interrupted: stopped at step")
    assert "run the same command" in last
    code, err, _ = _interrupt(noisy, out, config, "member1-fit", signal.SIGKILL)
    assert code == -signal.SIGKILL and "resuming from step" in err and not out.exists()
    done = _run(noisy, out, config)
    assert "member 1 of 2: taken from the checkpoint" in done.stderr
    assert "member 2 of 2: resuming from step" in done.stderr
    assert not path.exists()  # removed once the output is written
    a, b = (nib.load(p).get_fdata() for p in (plain, out))
    np.testing.assert_array_equal(a, b)


def _sr_resumes_after_sigkill(tmp_path, shape, factor, settings, key, counter, resumed):
    """Run sr whole, then SIGKILL it once `key` is saved at `counter` >= 5 and rerun: the
    log says `resumed`, the checkpoint is gone and the output equals the whole run's."""
    clean = gaussian_filter(mr_phantom(shape), 1.0).astype(np.float32)
    thick = tmp_path / "thick.nii.gz"
    affine = np.diag([1.0, 1.0, float(factor), 1.0])
    nib.save(nib.Nifti1Image(clean[..., ::factor], affine), thick)
    config = tmp_path / "quick.yaml"
    config.write_text(f"checkpoint_s: 0\n{settings}")
    sr = ("sr", "--factor", f"1,1,{factor}")
    plain, out = tmp_path / "plain.nii.gz", tmp_path / "resumed.nii.gz"
    _run(thick, plain, config, *sr)
    code, _, path = _interrupt(thick, out, config, key, signal.SIGKILL, *sr, counter=counter)
    assert code == -signal.SIGKILL and path.exists() and not out.exists()
    done = _run(thick, out, config, *sr)
    assert resumed in done.stderr and not path.exists()
    a, b = (nib.load(p).get_fdata() for p in (plain, out))
    np.testing.assert_array_equal(a, b)


def test_the_super_resolution_fit_resumes_after_sigkill(tmp_path):
    """The plain DIP fit (sr of noise-free thick slices) keeps its loop's state too."""
    settings = "fit: {max_iters: 12}\nstop: none\n"
    _sr_resumes_after_sigkill(
        tmp_path, (24, 24, 16), 2, settings, "fit", "step", "fit: resuming from iteration"
    )


def test_internal_super_resolution_resumes_after_sigkill(tmp_path):
    """sr by internal learning keeps its training's state (weights, optimiser, sampler)."""
    settings = "sr_method: internal\ninternal: {steps: 30, batch: 2}\n"
    _sr_resumes_after_sigkill(
        tmp_path, (40, 40, 16), 4, settings, "internal", "step", "internal sr: resuming from step"
    )


def test_a_checkpoint_from_another_input_is_refused_and_left_alone(tmp_path, capsys, mr_pair):
    _, noisy = mr_pair
    out = tmp_path / "out.nii.gz"
    stale = Checkpoint.beside(out, "made from another volume")
    stale.put("guide", np.zeros(3))
    before = digest(stale.path), digest(noisy)
    code, _, err = run_cli(capsys, "denoise", noisy, out, "--max-iters", "2")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "was made from another input or with other settings" in err and str(stale.path) in err
    assert not out.exists() and (digest(stale.path), digest(noisy)) == before


def test_a_retry_with_more_memory_keeps_the_checkpoint_other_settings_do_not(tmp_path):
    """Snakemake retries with mem_mb x attempt, so --memory-gb changes: same fingerprint;
    a change of seed (or any setting of the result) gives another one."""
    from argparse import Namespace

    from dipmed.commands import _checkpoint
    from dipmed.config import load_config
    from dipmed.restoration.restore import Task
    from dipmed.volume import Volume

    volume = Volume(np.ones((4, 4, 4), np.float32), np.eye(4))
    args = Namespace(command="denoise", output=tmp_path / "out.nii.gz")

    def key(**overrides):
        config = load_config(None, **overrides)
        return _checkpoint(args, volume, Task("denoise"), config).fingerprint

    assert key(memory_gb=3.4) == key(memory_gb=6.8) == key(checkpoint_s=10.0)
    assert key(seed=1) != key(seed=2)


def test_saving_arrays_does_not_copy_them(tmp_path):
    """A stage's arrays go to disk from their own memory: pickled as NumPy arrays they had
    cost 13.5 array-sizes of peak memory for a guide of 2.5 (the 512x512x300 CT peaked at
    the saves). Measured in a fresh process: the save adds under half an array."""
    import subprocess
    import sys

    code = f"""
import resource, numpy as np
from dipmed.restoration.runtime.checkpoint import Checkpoint
n = 25_000_000  # 100 MB per float32 array
arrays = (np.ones(n, np.float32), np.ones(n, np.float16), np.arange(n, dtype=np.float32))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
Checkpoint({str(tmp_path / "ck")!r}, "x", every_s=0).put("guide", arrays)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
back = Checkpoint({str(tmp_path / "ck")!r}, "x").open().get("guide")
assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(arrays, back))
print((after - before) * 1024 / (4 * n))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(done.stdout.strip().splitlines()[-1]) < 0.5
