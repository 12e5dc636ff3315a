"""A placeholder ``torchvision`` so reference packages that import it at module level (laion_clap) can load here.

Test-only (see ../shared/reference/environment.md §3): the inference paths the parity tests exercise never call
torchvision, apart from ``FrozenBatchNorm2d`` and the ``InterpolationMode`` enum, which are real. Any other class
raises when instantiated. Import ``transformers`` before calling :func:`install`, or transformers would see a
"torchvision" and try to use it. The finder affects the whole process; :func:`uninstall` removes it again.
"""
from __future__ import annotations

import contextlib
import enum
import importlib.abc
import importlib.machinery
import sys
import types

import torch


class FrozenBatchNorm2d(torch.nn.Module):
    def __init__(self, n, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(n))
        self.register_buffer("bias", torch.zeros(n))
        self.register_buffer("running_mean", torch.zeros(n))
        self.register_buffer("running_var", torch.ones(n))

    def forward(self, x):
        s = self.weight * (self.running_var + self.eps).rsqrt()
        return x * s.reshape(1, -1, 1, 1) + (self.bias - self.running_mean * s).reshape(1, -1, 1, 1)


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


class _Meta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return name


class _Placeholder(metaclass=_Meta):
    def __init__(self, *a, **k):
        raise RuntimeError("torchvision is not available here (test stub)")


_REAL = {"FrozenBatchNorm2d": FrozenBatchNorm2d, "InterpolationMode": InterpolationMode}


def _module_getattr(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _REAL.get(name) or type(name, (_Placeholder,), {})


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


_installed: list[_Finder] = []


def install(roots=("torchvision",)) -> None:
    if not _installed:
        f = _Finder(roots)
        sys.meta_path.insert(0, f)
        _installed.append(f)


def uninstall() -> None:
    while _installed:
        f = _installed.pop()
        if f in sys.meta_path:
            sys.meta_path.remove(f)
        for name in [n for n in sys.modules if n.split(".")[0] in f.roots]:
            del sys.modules[name]


@contextlib.contextmanager
def installed(roots=("torchvision",)):
    """Serve the named top-level packages as placeholders inside the block (unless a real one is importable), then
    remove the finder and the placeholder modules, so later tests still see torchvision as absent."""
    import importlib.util

    todo = tuple(r for r in roots if r not in sys.modules and importlib.util.find_spec(r) is None)
    if not todo:
        yield
        return
    install(todo)
    try:
        yield
    finally:
        uninstall()
