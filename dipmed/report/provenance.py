"""What ran: versions, the resolved configuration, the command line, the input's checksum."""

from __future__ import annotations

import hashlib
import os
import platform
import resource
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from dipmed.config import RestoreConfig, as_dict

PACKAGES = ("dipmed", "torch", "monai", "numpy", "nibabel", "pydicom", "scikit-image")
# where a job ran on a cluster: scheduler job and the GPUs it was given
ENVIRONMENT = ("SLURM_JOB_ID", "SLURM_JOB_PARTITION", "SLURM_GPUS_ON_NODE", "CUDA_VISIBLE_DEVICES")


def provenance(config: RestoreConfig, command_line: list[str], input_path: Path) -> dict:
    return {
        "versions": {"python": platform.python_version(), **_versions()},
        "config": as_dict(config),
        "seed": config.seed,
        "command_line": list(command_line),
        "input_sha256": checksum(input_path),
        "input_checksum_scope": "file" if input_path.is_file() else "every file in the folder",
        "environment": {key.lower(): os.environ.get(key) for key in ENVIRONMENT},
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def checksum(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative path and bytes, in path order)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file is not path:
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as stream:
            for block in iter(lambda s=stream: s.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def peak_host_memory_bytes() -> int:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found
