"""Every docstring example in dipmed runs and gives what it shows (the Python API's too)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import dipmed


def test_the_docstring_examples_run():
    tried = 0
    for info in pkgutil.walk_packages(dipmed.__path__, "dipmed."):
        if info.name == "dipmed.__main__":  # running it is the command line
            continue
        module = importlib.import_module(info.name)
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
        assert result.failed == 0, info.name
        tried += result.attempted
    result = doctest.testmod(dipmed, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    # the API's examples (denoise, super_resolve, inpaint), the checkpoint's, the filter's
    assert tried + result.attempted >= 15, tried
