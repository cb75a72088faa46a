"""llama.cpp's own converter (``convert_hf_to_gguf.py``), to write GGUFs as users get them.

Most GGUFs people download were written by llama.cpp's converter, not by apr-qa's
reference converter, so the fixtures of the architectures llama.cpp converts from a
SentencePiece tokenizer (gemma2, phi3) ship GGUFs written by it, and the differential
checks are proven on those. The converter is not on PyPI as a package; it ships in
llama-cpp-python's source distribution (``vendor/llama.cpp/convert_hf_to_gguf.py`` with
its ``conversion/`` and ``gguf-py/`` folders). :func:`converter_dir` takes it from the
sdist of the installed llama-cpp-python version (the converter that matches the
runtime), verified against the index's sha256, and caches the three parts.

``python -m apr_qa.testing.llama_cpp_converter`` prints the folder, fetching it if needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

from apr_qa.errors import AprQaError, EnvironmentProblem, UsageError

__all__ = [
    "CONVERTER_ENV",
    "DIRECT_TYPES",
    "convert_with_llama_cpp",
    "converter_dir",
    "fetch_converter",
    "main",
]

CONVERTER_ENV = "APR_QA_LLAMA_CPP_CONVERTER"
"""A folder holding ``convert_hf_to_gguf.py``; when set, it is used and nothing is fetched."""

INDEX_ENV = "APR_QA_PYPI_SIMPLE"
"""The simple index to fetch the sdist from (default https://pypi.org/simple)."""

SCRIPT = "convert_hf_to_gguf.py"
_PARTS = (SCRIPT, "conversion/", "gguf-py/")
_VENDOR = "vendor/llama.cpp/"
_TIMEOUT_S = 120

DIRECT_TYPES = ("f32", "f16", "bf16", "q8_0")
"""Types the converter writes itself (``--outtype``); others go through llama.cpp's quantizer."""


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "apr-qa" / "llama.cpp-converter"


def _installed_version() -> str:
    try:
        import llama_cpp
    except ImportError as exc:
        raise EnvironmentProblem(
            "llama.cpp's converter: llama-cpp-python is not installed"
        ) from exc
    return str(llama_cpp.__version__)


def converter_dir(version: str | None = None) -> Path:
    """The folder holding llama.cpp's ``convert_hf_to_gguf.py``; fetched once per version."""
    given = os.environ.get(CONVERTER_ENV)
    if given:
        folder = Path(given)
        if not (folder / SCRIPT).is_file():
            raise UsageError(f"{CONVERTER_ENV}={given}: no {SCRIPT} there")
        return folder
    version = version or _installed_version()
    folder = _cache_root() / version
    if (folder / SCRIPT).is_file():
        return folder
    return fetch_converter(version, folder)


def _sdist_entry(index: str, version: str) -> tuple[str, str]:
    """The sdist's URL and sha256 from the PEP 691 JSON simple index."""
    filename = f"llama_cpp_python-{version}.tar.gz"
    request = urllib.request.Request(
        f"{index.rstrip('/')}/llama-cpp-python/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
        files = json.load(response).get("files", [])
    for entry in files:
        if entry.get("filename") == filename:
            digest = entry.get("hashes", {}).get("sha256")
            if not digest:
                raise EnvironmentProblem(f"{index}: {filename} has no sha256 in the index")
            return urllib.parse.urljoin(request.full_url, entry["url"]), str(digest)
    raise EnvironmentProblem(f"{index}: no {filename} in the index")


def _download(url: str, dst: Path, sha256: str) -> None:
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, dst.open("wb") as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != sha256:
        raise EnvironmentProblem(
            f"{url}: sha256 {digest.hexdigest()} is not the index's {sha256}; nothing kept"
        )


def _extract(sdist: Path, version: str, dst: Path) -> None:
    """Unpack the converter's three parts of ``sdist`` into ``dst``; nothing else."""
    prefix = f"llama_cpp_python-{version}/{_VENDOR}"
    with tarfile.open(sdist, "r:gz") as tar:
        members = []
        for member in tar.getmembers():
            if not member.name.startswith(prefix):
                continue
            rel = member.name[len(prefix) :]
            if not rel.startswith(_PARTS) and rel != SCRIPT:
                continue
            if ".." in PurePosixPath(rel).parts or not (member.isfile() or member.isdir()):
                raise EnvironmentProblem(f"{sdist}: refusing archive member {member.name!r}")
            member.name = rel
            members.append(member)
        if not any(m.name == SCRIPT for m in members):
            raise EnvironmentProblem(f"{sdist}: no {_VENDOR}{SCRIPT} in the source distribution")
        tar.extractall(dst, members=members, filter="data")


def fetch_converter(version: str, dst: Path, index: str | None = None) -> Path:
    """Download llama-cpp-python ``version``'s sdist, verify it, unpack the converter to ``dst``.

    ``dst`` appears whole or not at all (unpacked beside it, then renamed).
    """
    index = index or os.environ.get(INDEX_ENV) or "https://pypi.org/simple"
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=f".{dst.name}.") as tmp:
        work = Path(tmp)
        try:
            url, sha256 = _sdist_entry(index, version)
            sdist = work / "sdist.tar.gz"
            _download(url, sdist, sha256)
        except (OSError, ValueError) as exc:  # URLError is an OSError; bad JSON a ValueError
            raise EnvironmentProblem(
                f"cannot fetch llama.cpp's converter (llama-cpp-python {version}) from {index}: "
                f"{exc}; set {CONVERTER_ENV} to a folder holding {SCRIPT}"
            ) from None
        unpacked = work / "converter"
        _extract(sdist, version, unpacked)
        try:
            unpacked.rename(dst)
        except OSError:
            if not (dst / SCRIPT).is_file():  # another process won the race: theirs is fine
                raise
    return dst


def convert_with_llama_cpp(src: Path, dst: Path, quant: str) -> Path:
    """Convert checkpoint ``src`` to GGUF ``dst`` as a user of llama.cpp would; return ``dst``.

    f32/f16/bf16/q8_0 come straight from the converter (``--outtype``); any other type
    is quantized from its f32 output by llama.cpp's quantizer (``llama-quantize``'s code).
    """
    from apr_qa.models.convert_kquant import LLAMA_FTYPES, quantize_with_llama_cpp

    quant = quant.lower()
    if quant not in DIRECT_TYPES and quant not in LLAMA_FTYPES:
        known = ", ".join((*DIRECT_TYPES, *(q for q in LLAMA_FTYPES if q not in DIRECT_TYPES)))
        raise UsageError(f"llama.cpp cannot write {quant!r}; it writes {known}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=f".{dst.name}.") as tmp:
        direct = quant if quant in DIRECT_TYPES else "f32"
        written = Path(tmp) / f"{direct}.gguf"
        _run_converter(src, written, direct)
        if direct != quant:
            quantized = Path(tmp) / f"{quant}.gguf"
            quantize_with_llama_cpp(written, quantized, quant)
            written = quantized
        written.replace(dst)
    return dst


def _run_converter(src: Path, dst: Path, outtype: str) -> None:
    folder = converter_dir()
    argv = [sys.executable, str(folder / SCRIPT), str(src), "--outtype", outtype]
    argv += ["--outfile", str(dst)]
    try:
        done = subprocess.run(
            argv, cwd=folder, capture_output=True, text=True, timeout=600, check=False
        )
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(f"{src}: llama.cpp's converter ran past 600 s") from None
    if done.returncode != 0 or not dst.is_file():
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit {done.returncode}, nothing on stderr"
        raise UsageError(f"{src}: llama.cpp's converter refused it: {last}")


def main(argv: list[str] | None = None) -> int:
    """Print the converter's folder, fetching it first if it is not cached."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        print("usage: python -m apr_qa.testing.llama_cpp_converter", file=sys.stderr)
        return 2
    try:
        print(converter_dir())
    except AprQaError as exc:
        print(f"apr-qa: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
