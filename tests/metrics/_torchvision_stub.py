"""Test-only import stand-in for torchvision/torchaudio (../shared/reference/environment.md §3).

Reference packages such as cd-fvd import torchvision at module import but never call it on the paths the parity
tests use. This meta-path finder serves any ``torchvision.*`` module as a placeholder whose classes raise when
instantiated. Use it as a context manager around the reference import: afterwards the finder and the placeholder modules are
removed again, so other tests in the session still see that torchvision/torchaudio are absent. Project code never
imports torchvision.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import sys
import types


class _Meta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return name


class _Placeholder(metaclass=_Meta):
    def __init__(self, *a, **k):
        raise RuntimeError("torchvision is not available here (test stub)")


def _module_getattr(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return type(name, (_Placeholder,), {})


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, roots):
        self.roots = set(roots)

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        m = types.ModuleType(spec.name)
        m.__path__ = []
        m.__getattr__ = _module_getattr
        return m

    def exec_module(self, module):
        pass


@contextlib.contextmanager
def installed(roots=("torchvision",)):
    """Serve the named top-level packages as placeholders (unless a real one is importable) inside the block."""
    import importlib.util

    todo = [r for r in roots if r not in sys.modules and importlib.util.find_spec(r) is None]
    finder = _Finder(todo) if todo else None
    if finder:
        sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        if finder:
            sys.meta_path.remove(finder)
            for name in [m for m in sys.modules if m.split(".")[0] in finder.roots]:
                del sys.modules[name]
