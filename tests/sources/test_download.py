import hashlib
import http.server
import io
import multiprocessing
import os
import pathlib
import tarfile
import threading
import time
import zipfile

import pytest

from seqpipe.sources import UnsafeArchiveError, get_file

pytestmark = pytest.mark.timeout(60)
PAYLOAD = os.urandom(300_000)


class Server:
    """A real HTTP server on 127.0.0.1 that serves ``files`` and counts requests."""

    def __init__(self):
        self.files = {}
        self.requests = []
        self.fail_next = 0  # answer this many requests with 500 first
        self.truncate = set()  # paths whose body is cut short
        self.delay = 0.0  # seconds before answering, to make racing clients overlap
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                time.sleep(server.delay)
                if server.fail_next:
                    server.fail_next -= 1
                    self.send_error(500, "try again")
                    return
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "no such file")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in server.truncate:
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    s.files["/data.bin"] = PAYLOAD
    yield s
    s.close()


def _leftovers(directory):
    return [n for n in os.listdir(directory) if n.startswith(".download-")]


def test_download_then_cache_hit_without_a_second_request(server, tmp_path):
    path = get_file("data.bin", server.url + "/data.bin", cache_dir=str(tmp_path))
    assert path == str(tmp_path / "datasets" / "data.bin")
    assert pathlib.Path(path).read_bytes() == PAYLOAD
    again = get_file("data.bin", server.url + "/data.bin", cache_dir=str(tmp_path))
    assert again == path and server.requests == ["/data.bin"]


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
@pytest.mark.parametrize("declared", ["auto", "explicit"])
def test_hashes_are_verified(server, tmp_path, algorithm, declared):
    digest = hashlib.new(algorithm, PAYLOAD).hexdigest()
    hash_algorithm = "auto" if declared == "auto" else algorithm
    path = get_file(
        "data.bin",
        server.url + "/data.bin",
        file_hash=digest,
        hash_algorithm=hash_algorithm,
        cache_dir=str(tmp_path),
    )
    assert pathlib.Path(path).read_bytes() == PAYLOAD


def test_deprecated_md5_hash_argument(server, tmp_path):
    digest = hashlib.md5(PAYLOAD).hexdigest()
    path = get_file("d", server.url + "/data.bin", md5_hash=digest, cache_dir=str(tmp_path))
    assert os.path.getsize(path) == len(PAYLOAD)


def test_hash_mismatch_deletes_the_download_and_names_both_hashes(server, tmp_path):
    wrong = "0" * 64
    good = hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(ValueError, match=f"{good}, expected {wrong}"):
        get_file("data.bin", server.url + "/data.bin", file_hash=wrong, cache_dir=str(tmp_path))
    datadir = tmp_path / "datasets"
    assert not (datadir / "data.bin").exists() and _leftovers(datadir) == []


def test_corrupted_cache_is_downloaded_again_with_a_warning(server, tmp_path):
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    url = server.url + "/data.bin"
    path = get_file("data.bin", url, file_hash=digest, cache_dir=str(tmp_path))
    with open(path, "r+b") as f:
        f.write(b"garbage")
    with pytest.warns(UserWarning, match="does not match its sha256 hash"):
        get_file("data.bin", url, file_hash=digest, cache_dir=str(tmp_path))
    assert pathlib.Path(path).read_bytes() == PAYLOAD and len(server.requests) == 2


def test_server_errors_are_retried_and_reported(server, tmp_path):
    server.fail_next = 2
    path = get_file("data.bin", server.url + "/data.bin", cache_dir=str(tmp_path))
    assert pathlib.Path(path).read_bytes() == PAYLOAD and len(server.requests) == 3
    with pytest.raises(OSError, match=r"URL fetch failure on .*/missing after 1 attempt.*404"):
        get_file("missing", server.url + "/missing", cache_dir=str(tmp_path))


def test_interrupted_download_leaves_nothing_behind(server, tmp_path):
    server.truncate.add("/data.bin")
    with pytest.raises(OSError, match="after 3 attempt"):
        get_file("data.bin", server.url + "/data.bin", cache_dir=str(tmp_path))
    datadir = tmp_path / "datasets"
    assert not (datadir / "data.bin").exists() and _leftovers(datadir) == []
    assert len(server.requests) == 3


def test_file_origin_absolute_fname_and_environment(tmp_path, monkeypatch):
    source = tmp_path / "source.bin"
    source.write_bytes(PAYLOAD)
    target = tmp_path / "elsewhere" / "copy.bin"
    path = get_file(str(target), source.as_uri())
    assert path == str(target) and target.read_bytes() == PAYLOAD
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    path = get_file("x.bin", source.as_uri(), cache_subdir="sub")
    assert path == str(tmp_path / "keras_home" / "sub" / "x.bin")
    monkeypatch.setenv("SEQPIPE_HOME", str(tmp_path / "seqpipe_home"))
    assert get_file("x.bin", source.as_uri()).startswith(str(tmp_path / "seqpipe_home"))


def _tar(mode, entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    "name, make",
    [
        ("a.tar.gz", lambda e: _tar("w:gz", e)),
        ("a.tar.bz2", lambda e: _tar("w:bz2", e)),
        ("a.tar.xz", lambda e: _tar("w:xz", e)),
        ("a.zip", _zip),
    ],
)
def test_archives_extract_and_reextract(server, tmp_path, name, make):
    server.files["/" + name] = make([("pkg/one.txt", b"1"), ("pkg/sub/two.txt", b"22")])
    for _ in range(2):  # the second call finds the file cached and extracts again
        path = get_file(name, server.url + "/" + name, extract=True, cache_dir=str(tmp_path))
    datadir = tmp_path / "datasets"
    assert path == str(datadir / name)
    assert (datadir / "pkg" / "sub" / "two.txt").read_bytes() == b"22"
    assert len(server.requests) == 1


def test_untar_returns_the_extracted_directory(server, tmp_path):
    server.files["/pkg.tar.gz"] = _tar("w:gz", [("pkg/one.txt", b"1")])
    path = get_file("pkg", server.url + "/pkg.tar.gz", untar=True, cache_dir=str(tmp_path))
    assert path == str(tmp_path / "datasets" / "pkg")
    assert os.path.isdir(path) and pathlib.Path(path, "one.txt").read_text() == "1"


def test_untar_strips_the_archive_suffix_of_fname_and_returns_a_path_that_exists(server, tmp_path):
    server.files["/test.txt.tar.gz"] = _tar("w:gz", [("test.txt", b"float like a butterfly")])
    url = server.url + "/test.txt.tar.gz"
    path = get_file("test.txt.tar.gz", url, untar=True, cache_dir=str(tmp_path))
    datadir = tmp_path / "datasets"
    assert path == str(datadir / "test.txt")
    assert pathlib.Path(path).read_bytes() == b"float like a butterfly"
    assert sorted(os.listdir(datadir)) == ["test.txt", "test.txt.tar.gz", "test.txt.tar.gz.lock"]


def test_fname_defaults_to_the_last_part_of_the_url(server, tmp_path):
    server.files["/data.bin?version=2"] = PAYLOAD
    path = get_file(origin=server.url + "/data.bin?version=2", cache_dir=str(tmp_path))
    assert path == str(tmp_path / "datasets" / "data.bin")
    assert pathlib.Path(path).read_bytes() == PAYLOAD


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fname": "x.bin"}, "needs the origin URL of the file. Received: origin=None"),
        ({"origin": "http://127.0.0.1:9/"}, "cannot take a file name from origin="),
    ],
)
def test_missing_origin_or_file_name_is_a_value_error(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_file(cache_dir=str(tmp_path), **kwargs)


def _link_tar(kind, target):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("inside/ok.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
        link = tarfile.TarInfo("inside/link")
        link.type = kind
        link.linkname = target
        tar.addfile(link)
    return buf.getvalue()


@pytest.mark.parametrize(
    "archive, match",
    [
        (_tar("w", [("../evil.txt", b"x")]), "'../evil.txt' would be written outside"),
        (_tar("w", [("/tmp/evil.txt", b"x")]), "'/tmp/evil.txt' would be written outside"),
        (_zip([("ok.txt", b"x"), ("../../evil.txt", b"x")]), "'../../evil.txt' would be"),
        (_link_tar(tarfile.SYMTYPE, "../../outside"), "links to '../../outside'"),
        (_link_tar(tarfile.SYMTYPE, "/etc/passwd"), "links to '/etc/passwd'"),
        (_link_tar(tarfile.LNKTYPE, "../outside"), "'../outside' would be written outside"),
    ],
)
def test_malicious_archives_are_refused_and_write_nothing(server, tmp_path, archive, match):
    server.files["/bad.tar"] = archive
    with pytest.raises(UnsafeArchiveError, match=match):
        get_file("bad.tar", server.url + "/bad.tar", extract=True, cache_dir=str(tmp_path))
    datadir = tmp_path / "datasets"
    assert sorted(os.listdir(datadir)) == ["bad.tar", "bad.tar.lock"]
    assert not (tmp_path / "evil.txt").exists()


def _race(args):
    url, cache = args
    path = get_file("data.bin", url, cache_dir=cache)
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_eight_processes_racing_download_once(server, tmp_path):
    server.delay = 0.3  # every process asks while the first download is under way
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Pool(8) as pool:
        digests = pool.map(_race, [(server.url + "/data.bin", str(tmp_path))] * 8)
    assert set(digests) == {hashlib.sha256(PAYLOAD).hexdigest()}
    assert server.requests == ["/data.bin"]
    assert _leftovers(tmp_path / "datasets") == []
