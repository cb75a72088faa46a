"""apr-qa: qualify language models by trying to break them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("apr-qa")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
