"""Errors a user can act on.

`InputError` means bad input or usage: the CLI prints its message as one line and exits 2.
Anything else escaping the CLI is an unexpected failure (exit 1).
"""

from __future__ import annotations


class InputError(Exception):
    """Bad input or usage; the message names the problem and the fix."""
