"""The walker: patterns, order, hidden/temporary files, symlinks, compressed files."""

import gzip
import os
import zipfile

import pytest

from processor.errors import ConfigError, SourceError
from processor.find import discover


def touch(root, *paths, content=b"a,b\n1,2\n"):
    for path in paths:
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(content)


def paths(discovery):
    return [f.path for f in discovery.files]


def test_a_name_pattern_matches_at_any_depth_in_sorted_order(tmp_path):
    touch(tmp_path, "b/certificates.csv", "a/certificates.csv", "a/deep/er/certificates.csv", "a/recommendations.csv")
    found = discover(str(tmp_path), ("certificates.csv",))
    assert paths(found) == ["a/certificates.csv", "a/deep/er/certificates.csv", "b/certificates.csv"]
    assert found.matches == {"certificates.csv": 3}


def test_a_pattern_with_a_slash_is_relative_to_the_root(tmp_path):
    touch(tmp_path, "x.csv", "a/x.csv", "a/b/x.csv")
    assert paths(discover(str(tmp_path), ("*/x.csv",))) == ["a/x.csv"]
    assert paths(discover(str(tmp_path), ("**/x.csv",))) == ["a/b/x.csv", "a/x.csv", "x.csv"]
    assert paths(discover(str(tmp_path), ("a/**",))) == ["a/b/x.csv", "a/x.csv"]


def test_several_patterns_count_their_matches_and_list_a_file_once(tmp_path):
    touch(tmp_path, "raw_orders.csv", "raw_payments.csv", "notes.txt")
    found = discover(str(tmp_path), ("raw_*.csv", "*.csv", "*.json"))
    assert paths(found) == ["raw_orders.csv", "raw_payments.csv"]
    assert found.matches == {"raw_*.csv": 2, "*.csv": 2, "*.json": 0}


def test_hidden_and_temporary_files_are_skipped(tmp_path):
    touch(tmp_path, "ok.csv", ".hidden.csv", ".git/x.csv", "~$open.csv", "b.csv~", "c.csv.tmp", "d.csv.part")
    assert paths(discover(str(tmp_path), ("*.csv*",))) == ["ok.csv"]


def test_symlinks_out_of_the_root_are_never_followed(tmp_path):
    outside = tmp_path / "outside"
    root = tmp_path / "root"
    touch(outside, "secret.csv", "dir/leak.csv")
    touch(root, "inside.csv")
    os.symlink(outside / "secret.csv", root / "secret.csv")
    os.symlink(outside / "dir", root / "dir")
    os.symlink(root / "inside.csv", root / "alias.csv")
    assert paths(discover(str(root), ("*.csv",))) == ["alias.csv", "inside.csv"]


@pytest.mark.parametrize("pattern", ["../*.csv", "a/../../x.csv", "/etc/*.csv"])
def test_patterns_may_not_leave_the_root(tmp_path, pattern):
    touch(tmp_path, "x.csv")
    with pytest.raises(ConfigError, match="inside SRC_DATA_FOLDER"):
        discover(str(tmp_path), (pattern,))


def test_missing_folder_and_no_match_are_source_errors(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        discover(str(tmp_path / "nope"), ("*.csv",))
    touch(tmp_path, "x.txt")
    with pytest.raises(SourceError, match="no file under"):
        discover(str(tmp_path), ("*.csv",))


def test_compressed_files_match_by_their_inner_name(tmp_path):
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(b"a\n1\n"))
    with zipfile.ZipFile(tmp_path / "dump.zip", "w") as archive:
        archive.writestr("q1/certificates.csv", "a\n1\n")
        archive.writestr("q1/readme.txt", "hello")
    found = discover(str(tmp_path), ("*.csv",))
    assert paths(found) == ["a.csv.gz", "dump.zip/q1/certificates.csv"]
    member = found.files[1]
    assert (member.compression, member.member) == ("zip", "q1/certificates.csv")
    assert member.fingerprint.startswith("zip-crc32:")
