"""dipmed: Deep Image Prior restoration of 3D medical volumes (MRI, CT)."""

from __future__ import annotations

__version__ = "0.1.1"
