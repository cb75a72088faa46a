"""Fetching llama.cpp's converter from an sdist: against a real HTTP index on 127.0.0.1
playing PyPI's JSON simple API, with a real tarball; a tampered download and an archive
that tries to write outside its folder are refused and leave nothing cached."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from apr_qa.errors import EnvironmentProblem, UsageError
from apr_qa.testing import llama_cpp_converter as lcc

VERSION = "9.9.9"
PREFIX = f"llama_cpp_python-{VERSION}/vendor/llama.cpp/"


def _tarball(extra: dict[str, bytes] | None = None) -> bytes:
    files = {
        PREFIX + "convert_hf_to_gguf.py": b"print('converter')\n",
        PREFIX + "conversion/__init__.py": b"",
        PREFIX + "gguf-py/gguf/__init__.py": b"",
        PREFIX + "ggml/src/ggml.c": b"int main;\n",  # not part of the converter
        f"llama_cpp_python-{VERSION}/setup.py": b"",
        **(extra or {}),
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Index:
    """What the server serves: one sdist and the sha256 the index claims for it."""

    def __init__(self) -> None:
        self.sdist = _tarball()
        self.claimed: str | None = None

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/simple/llama-cpp-python/":
                    digest = index.claimed or hashlib.sha256(index.sdist).hexdigest()
                    body = json.dumps(
                        {
                            "files": [
                                {
                                    "filename": f"llama_cpp_python-{VERSION}.tar.gz",
                                    "url": "/files/sdist.tar.gz",
                                    "hashes": {"sha256": digest},
                                }
                            ]
                        }
                    ).encode()
                elif self.path == "/files/sdist.tar.gz":
                    body = index.sdist
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def index() -> Iterator[tuple[_Index, str]]:
    state = _Index()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_unpacks_only_the_converter(tmp_path: Path, index: tuple[_Index, str]) -> None:
    _, url = index
    dst = lcc.fetch_converter(VERSION, tmp_path / VERSION, index=url)
    found = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert found == [
        "conversion/__init__.py",
        "convert_hf_to_gguf.py",
        "gguf-py/gguf/__init__.py",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [VERSION]  # no temporary left


def test_a_download_that_does_not_match_the_index_is_refused(
    tmp_path: Path, index: tuple[_Index, str]
) -> None:
    state, url = index
    state.claimed = "0" * 64
    with pytest.raises(EnvironmentProblem, match="sha256"):
        lcc.fetch_converter(VERSION, tmp_path / VERSION, index=url)
    assert list(tmp_path.iterdir()) == []


def test_an_archive_member_escaping_its_folder_is_refused(
    tmp_path: Path, index: tuple[_Index, str]
) -> None:
    state, url = index
    state.sdist = _tarball({PREFIX + "gguf-py/../../../../evil.py": b"x"})
    with pytest.raises(EnvironmentProblem, match="refusing archive member"):
        lcc.fetch_converter(VERSION, tmp_path / "cache" / VERSION, index=url)
    assert not (tmp_path / "evil.py").exists()
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_unreachable_index_names_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match=lcc.CONVERTER_ENV):
        lcc.fetch_converter(VERSION, tmp_path / VERSION, index="http://127.0.0.1:9/simple")


def test_a_version_missing_from_the_index_is_named(
    tmp_path: Path, index: tuple[_Index, str]
) -> None:
    _, url = index
    with pytest.raises(EnvironmentProblem, match=re.escape("no llama_cpp_python-1.0.0.tar.gz")):
        lcc.fetch_converter("1.0.0", tmp_path / "1.0.0", index=url)


def test_the_environment_variable_wins_and_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(lcc.CONVERTER_ENV, str(tmp_path))
    with pytest.raises(UsageError, match=re.escape("no convert_hf_to_gguf.py")):
        lcc.converter_dir()
    (tmp_path / lcc.SCRIPT).write_text("")
    assert lcc.converter_dir() == tmp_path


def test_the_cache_is_used_once_filled(
    tmp_path: Path, index: tuple[_Index, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = index
    monkeypatch.delenv(lcc.CONVERTER_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv(lcc.INDEX_ENV, url)
    first = lcc.converter_dir(VERSION)
    state.sdist = b"not a tarball any more"
    assert lcc.converter_dir(VERSION) == first  # served from the cache, no download


def test_a_type_llama_cpp_cannot_write_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=re.escape("llama.cpp cannot write 'q9_9'")):
        lcc.convert_with_llama_cpp(tmp_path, tmp_path / "x.gguf", "q9_9")


def test_main_prints_the_folder_or_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(lcc.CONVERTER_ENV, str(tmp_path))
    assert lcc.main([]) == 2  # no convert_hf_to_gguf.py there: a usage error
    assert capsys.readouterr().err.startswith("apr-qa: error: ")
    (tmp_path / lcc.SCRIPT).write_text("")
    assert lcc.main([]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path)
    assert lcc.main(["extra"]) == 2
