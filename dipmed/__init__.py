"""dipmed: Deep Image Prior restoration of 3D medical volumes (MRI, CT).

The Python API (`dipmed.api`, loaded on first use so that `import dipmed` stays light):
`denoise`, `super_resolve` and `inpaint` take a NumPy array (with its spacing and
modality) or a `Volume`; `read` and `write` handle NIfTI and DICOM.

    >>> import dipmed
    >>> sorted(dipmed.__all__)
    ['Volume', '__version__', 'denoise', 'inpaint', 'read', 'super_resolve', 'write']
"""

from __future__ import annotations

__version__ = "0.4.1"
__all__ = ["Volume", "__version__", "denoise", "inpaint", "read", "super_resolve", "write"]
_API = {"denoise", "super_resolve", "inpaint", "read", "write"}


def __getattr__(name: str):
    if name in _API:
        from dipmed import api

        return getattr(api, name)
    if name == "Volume":
        from dipmed.volume import Volume

        return Volume
    raise AttributeError(f"module 'dipmed' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
