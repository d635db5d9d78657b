"""`landmark-jax prepare gldv2` against a real HTTP server on 127.0.0.1 serving GLDv2-layout
tars built from landmarks-mini: md5 verification, a corrupt part fetched again, a cut-short
part resumed with a Range request, safe extraction, packing, and the packed shards read back
through the pipeline to the same images as the extracted JPEG files."""

import collections
import hashlib
import http.server
import io
import re
import tarfile
import threading

import numpy as np
import pytest

from landmark_jax.cli import prepare as prepare_cli
from landmark_jax.cli.main import main
from landmark_jax.data import GLDv2Source, PipelineConfig, eval_dataset
from landmark_jax.prepare import download, gldv2
from landmark_jax.prepare.extract import UnsafeArchiveError, extract_tar

NUM_PARTS = 3
FLIP = bytes(255 - i for i in range(256))  # bytes.translate table: every bit inverted


class Server:
  """A ThreadingHTTPServer on 127.0.0.1 serving `files` (URL path → bytes), with ``Range:
  bytes=N-`` support (206, or 416 past the end), that logs every GET's Range header.

  corrupt_once / corrupt_always: paths whose (first / every) answer has every bit flipped.
  cut_once: paths whose first answer stops after half the body and closes the connection.
  ignore_range: answer 200 with the whole file even when asked for a range.
  """

  def __init__(self, files, *, corrupt_once=(), corrupt_always=(), cut_once=(), ignore_range=False):
    self.files = files
    self.log = []  # (path, Range header or None)
    counts = collections.Counter()
    lock = threading.Lock()
    server = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def log_message(self, *args):  # quiet
        pass

      def do_GET(self):
        with lock:
          server.log.append((self.path, self.headers.get("Range")))
          counts[self.path] += 1
          first = counts[self.path] == 1
        data = server.files.get(self.path)
        if data is None:
          self.send_error(404)
          return
        if self.path in corrupt_always or (self.path in corrupt_once and first):
          data = data.translate(FLIP)
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and not ignore_range:
          start = int(match.group(1))
          if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
          self.send_response(206)
          self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
          self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in cut_once and first:
          self.wfile.write(body[: len(body) // 2])  # then the connection closes
          self.wfile.flush()
          self.close_connection = True
          return
        self.wfile.write(body)

    self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/google-landmark"
    self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

  def __enter__(self):
    self.thread.start()
    return self

  def __exit__(self, *exc):
    self.httpd.shutdown()
    self.httpd.server_close()

  def requests(self, path):
    return [rng for p, rng in self.log if p == path]


def image_files(root):
  """landmarks-mini's photos: relative path → bytes."""
  images = root / "images"
  return {p.relative_to(images).as_posix(): p.read_bytes() for p in sorted(images.rglob("*.jpg"))}


def make_tar(members):
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode="w") as tar:
    for name, data in members.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return buffer.getvalue()


def gldv2_files(root, num_parts=NUM_PARTS):
  """GLDv2's server layout of landmarks-mini: URL path → bytes, and each part's tar."""
  photos = image_files(root)
  names = sorted(photos)
  tars = [make_tar({n: photos[n] for n in names[i::num_parts]}) for i in range(num_parts)]
  prefix = "/google-landmark"
  files = {f"{prefix}/metadata/train.csv": (root / "train.csv").read_bytes()}
  for i, tar in enumerate(tars):
    files[f"{prefix}/train/images_{i:03d}.tar"] = tar
    md5 = hashlib.md5(tar).hexdigest()
    files[f"{prefix}/md5sum/train/md5.images_{i:03d}.txt"] = f"{md5}  images_{i:03d}.tar\n".encode()
  return files, tars, photos


def tar_path(i):
  return f"/google-landmark/train/images_{i:03d}.tar"


def decoded(source, config):
  """Every image of `source` through the eval pipeline (grain): id → pixels."""
  images = {}
  for batch in eval_dataset(source, config, shard_index=0, shard_count=1):
    for image, image_id, mask in zip(batch["image"], batch["id"], batch["mask"]):
      if mask:
        images[str(image_id)] = image
  return images


@pytest.mark.slow
def test_prepare_verifies_refetches_resumes_extracts_and_packs(landmarks_mini, tmp_path):
  files, tars, photos = gldv2_files(landmarks_mini)
  out = tmp_path / "gldv2"
  # Part 0: a .part left by an interrupted run (its first third); part 1 is served corrupt
  # the first time; part 2's first answer stops halfway and closes the connection.
  (out / "tars").mkdir(parents=True)
  seeded = len(tars[0]) // 3
  (out / "tars" / "images_000.tar.part").write_bytes(tars[0][:seeded])
  with Server(files, corrupt_once={tar_path(1)}, cut_once={tar_path(2)}) as server:
    result = gldv2.prepare_gldv2(
      out,
      base_url=server.url,
      parts=range(NUM_PARTS),
      jobs=3,
      keep_tars=True,
      pack=True,
      shard_size=20,
      progress=False,
    )
    log = list(server.log)

    # Every tar verified against its md5 (computed here from the served bytes).
    expected = {f"images_{i:03d}": hashlib.md5(t).hexdigest() for i, t in enumerate(tars)}
    assert result.verified == expected
    assert result.fetched == tuple(sorted(expected))
    for i, tar in enumerate(tars):
      assert (out / "tars" / f"images_{i:03d}.tar").read_bytes() == tar
    assert not list((out / "tars").glob("*.part"))
    # The .part was continued from its size; the corrupt part fetched again from the start;
    # the cut-short one continued from where the connection closed.
    assert server.requests(tar_path(0)) == [f"bytes={seeded}-"]
    assert server.requests(tar_path(1)) == [None, None]
    assert server.requests(tar_path(2)) == [None, f"bytes={len(tars[2]) // 2}-"]
    assert result.metadata == ("train.csv",)  # the optional CSVs are absent (404): skipped

    # Extracted in GLDv2's layout, byte for byte.
    extracted = {
      p.relative_to(out / "train").as_posix(): p.read_bytes()
      for p in (out / "train").rglob("*")
      if p.is_file()
    }
    assert extracted == photos

    # A rerun downloads nothing and leaves the packed folder as it is.
    manifest = (out / "packed" / "manifest.json").read_text()
    again = gldv2.prepare_gldv2(
      out, base_url=server.url, parts=range(NUM_PARTS), pack=True, shard_size=20, progress=False
    )
    new_requests = [path for path, _ in server.log[len(log) :]]
    assert not [p for p in new_requests if "/train/" in p or "/md5sum/" in p]
    assert again.verified == expected and again.fetched == () and again.packed.reused
    assert (out / "packed" / "manifest.json").read_text() == manifest

  # The shards read back, through the source and grain, to the files' bytes and pixels.
  non_landmark = str(landmarks_mini / "non_landmark.csv")
  from_files = GLDv2Source(out, non_landmark_csv=non_landmark)
  from_shards = GLDv2Source(out, non_landmark_csv=non_landmark, packed_dir="packed")
  assert len(from_files) == len(photos) and from_shards.missing == 0
  assert list(from_shards.ids) == list(from_files.ids)
  assert (from_shards.labels == from_files.labels).all()
  for i in range(len(from_files)):
    with open(from_files[i]["path"], "rb") as f:
      assert from_shards[i]["encoded"] == f.read()
  config = PipelineConfig(batch_size=8, num_workers=0)
  pixels_files, pixels_shards = decoded(from_files, config), decoded(from_shards, config)
  assert sorted(pixels_files) == sorted(map(str, from_files.ids))
  for image_id, image in pixels_files.items():
    np.testing.assert_array_equal(pixels_shards[image_id], image)


def test_a_part_that_stays_corrupt_is_a_one_line_error_naming_it(landmarks_mini, tmp_path, capsys):
  files, tars, _ = gldv2_files(landmarks_mini)
  with Server(files, corrupt_always={tar_path(1)}) as server:
    status = main(
      [
        "prepare",
        "gldv2",
        "--out",
        str(tmp_path / "out"),
        "--base-url",
        server.url,
        "--parts",
        "0-1",
        "--attempts",
        "2",
        "--jobs",
        "1",
        "--no-progress",
      ]
    )
    assert server.requests(tar_path(1)) == [None, None]  # both attempts from the start
  lines = capsys.readouterr().err.strip().splitlines()
  assert status == 2
  assert lines[-1].startswith(
    "landmark-jax prepare: error: images_001.tar: still failing after 2 attempts (md5 "
  )
  # The good part is finished and recorded; the bad one is not, and no file of it is left.
  state = (tmp_path / "out" / "prepare_state.json").read_text()
  assert hashlib.md5(tars[0]).hexdigest() in state and "images_001" not in state
  assert not list((tmp_path / "out" / "tars").glob("images_001*"))


def test_a_server_that_ignores_range_gets_the_file_from_the_start(tmp_path):
  data = bytes(range(256)) * 4096  # 1 MiB
  garbage = b"x" * 1000  # a .part that is not even a prefix: must not be kept
  (tmp_path / "f.bin.part").write_bytes(garbage)
  with Server({"/f.bin": data}, ignore_range=True) as server:
    download.fetch_verified(
      server.url.rsplit("/", 1)[0] + "/f.bin", tmp_path / "f.bin", hashlib.md5(data).hexdigest()
    )
    assert server.requests("/f.bin") == ["bytes=1000-"]  # asked to continue, got a 200
  assert (tmp_path / "f.bin").read_bytes() == data


def test_a_short_file_is_continued_then_a_wrong_one_restarted(tmp_path):
  data = bytes(range(256)) * 4096
  md5 = hashlib.md5(data).hexdigest()
  with Server({"/f.bin": data}) as server:
    url = server.url.rsplit("/", 1)[0] + "/f.bin"
    (tmp_path / "f.bin").write_bytes(data[:5000])  # short: continued from 5000
    download.fetch_verified(url, tmp_path / "f.bin", md5)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert server.requests("/f.bin") == ["bytes=5000-"]
    # Whole length but wrong bytes: the range past its end is refused (416), so it starts over.
    (tmp_path / "g.bin").write_bytes(data.translate(FLIP))
    server.files["/g.bin"] = data
    download.fetch_verified(server.url.rsplit("/", 1)[0] + "/g.bin", tmp_path / "g.bin", md5)
    assert (tmp_path / "g.bin").read_bytes() == data
    assert server.requests("/g.bin") == [f"bytes={len(data)}-", None]


@pytest.mark.parametrize("name", ["../evil.jpg", "/tmp/evil.jpg", "a/../../evil.jpg"])
def test_extraction_refuses_members_outside_the_destination(tmp_path, name):
  archive = tmp_path / "images_000.tar"
  archive.write_bytes(make_tar({"0/1/2/good.jpg": b"ok", name: b"evil"}))
  with pytest.raises(UnsafeArchiveError, match=re.escape(name)):
    extract_tar(archive, tmp_path / "train")
  assert not (tmp_path / "train").exists()  # nothing written, not even the good member
  assert not (tmp_path / "evil.jpg").exists()


def test_extraction_refuses_links(tmp_path):
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode="w") as tar:
    link = tarfile.TarInfo("0/1/2/link.jpg")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    tar.addfile(link)
  (tmp_path / "t.tar").write_bytes(buffer.getvalue())
  with pytest.raises(UnsafeArchiveError, match="not a regular file"):
    extract_tar(tmp_path / "t.tar", tmp_path / "train")


@pytest.mark.parametrize("parts", ["5-2", "0-500", "x", "-1"])
def test_bad_parts_is_a_one_line_usage_error(tmp_path, capsys, parts):
  with pytest.raises(SystemExit) as exit_:
    main(["prepare", "gldv2", "--out", str(tmp_path), f"--parts={parts}"])
  err = capsys.readouterr().err.strip()
  assert exit_.value.code == 2 and len(err.splitlines()) == 1
  assert "--parts" in err and "0 ≤ A ≤ B ≤ 499" in err
  assert not list(tmp_path.iterdir())  # refused before any work


def test_parts_and_md5_lists_parse():
  assert gldv2.parse_parts("3-5") == range(3, 6) and gldv2.parse_parts("7") == range(7, 8)
  md5 = "0123456789abcdef0123456789ABCDEF"
  text = f"ffffffffffffffffffffffffffffffff  images_001.tar\n{md5}  images_002.tar\n"
  assert gldv2.parse_md5_list(text, "images_002.tar") == md5.lower()


def test_the_cli_constants_are_the_library_ones():
  assert prepare_cli.DEFAULT_BASE_URL == gldv2.DEFAULT_BASE_URL
  assert prepare_cli.NUM_PARTS == gldv2.NUM_PARTS
