"""Atomic writing: a hidden part file beside the output, normal permissions, exact messages."""
from __future__ import annotations

import os

import pytest

from viewer.files import safe_write
from viewer.errors import ViewerError
from viewer.files.safe_write import (check_output_path, prepare_output_folder, write_atomic,
                               write_bytes_atomic, write_text_atomic)


def _refuse(err: OSError):
    def fail(*args, **kwargs):
        raise err
    return fail


def test_an_output_goes_through_a_hidden_part_file_in_its_own_folder(tmp_path, monkeypatch):
    renames, real_replace = [], os.replace
    monkeypatch.setattr(safe_write.os, "replace",
                        lambda src, dst: (renames.append((src, dst)), real_replace(src, dst)))
    old_umask = os.umask(0)
    try:
        assert os.stat(write_bytes_atomic(tmp_path / "open.bin", b"")).st_mode & 0o777 == 0o666
        (tmp_path / "open.bin").unlink()
        renames.clear()
        os.umask(0o027)
        out = write_text_atomic(tmp_path / "map.txt", "écrit\n")
    finally:
        os.umask(old_umask)
    assert out == tmp_path / "map.txt" and out.read_bytes() == "écrit\n".encode("utf-8")
    (part, target), = renames
    part = os.path.basename(part)
    assert os.path.dirname(renames[0][0]) == str(tmp_path) and target == out
    assert part.startswith(".map.txt.") and part.endswith(".part")
    assert os.stat(out).st_mode & 0o777 == 0o640          # 0666 less the umask, not 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.txt"]


def test_a_failed_write_keeps_the_old_file_and_says_so(tmp_path):
    target = tmp_path / "kept.bin"
    target.write_bytes(b"old")

    def broken(fh):
        fh.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(ViewerError) as err:
        write_atomic(target, broken)
    assert str(err.value) == (f"cannot write {target} (no space left on device); any earlier "
                              "file there is unchanged")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["kept.bin"]


def test_a_folder_where_no_file_can_be_made_is_named_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(safe_write.tempfile, "mkstemp",
                        _refuse(PermissionError(13, "Permission denied")))
    with pytest.raises(ViewerError) as err:
        prepare_output_folder(tmp_path)
    assert str(err.value) == (f"output folder {tmp_path} is not writable (permission denied): "
                              "choose another folder")
    with pytest.raises(ViewerError) as err:
        write_bytes_atomic(tmp_path / "x.bin", b"x")
    assert str(err.value) == (f"output folder {tmp_path} is not writable (permission denied): "
                              "choose another folder")
    monkeypatch.setattr(safe_write.tempfile, "mkstemp", _refuse(OSError("Quota Gone")))
    with pytest.raises(ViewerError, match=r"not writable \(quota gone\)"):
        prepare_output_folder(tmp_path)


def test_the_output_folder_is_made_with_its_parents_and_probed_without_a_trace(tmp_path,
                                                                              monkeypatch):
    probes, real_mkstemp = [], safe_write.tempfile.mkstemp

    def recorded_mkstemp(**kwargs):
        fd, name = real_mkstemp(**kwargs)
        probes.append(name)
        return fd, name

    monkeypatch.setattr(safe_write.tempfile, "mkstemp", recorded_mkstemp)
    folder = tmp_path / "a" / "b" / "c"
    assert prepare_output_folder(folder) == folder and folder.is_dir()
    probe, = probes                                                # written in the folder
    assert os.path.dirname(probe) == str(folder)
    assert os.path.basename(probe).startswith(".write-probe.")     # hidden if ever left
    assert prepare_output_folder(str(folder)) == folder          # already there: fine
    assert list(folder.iterdir()) == []                            # the probe is gone
    (tmp_path / "file").write_text("x")
    with pytest.raises(ViewerError) as err:
        prepare_output_folder(tmp_path / "file")
    assert str(err.value) == f"output folder {tmp_path / 'file'} is an existing file: choose a folder"


def test_a_folder_that_cannot_be_made_is_named_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(safe_write.Path, "mkdir", _refuse(PermissionError(13, "Permission denied")))
    with pytest.raises(ViewerError) as err:
        prepare_output_folder(tmp_path / "new")
    assert str(err.value) == (f"cannot create the output folder {tmp_path / 'new'} (permission "
                              "denied): choose another folder")


def test_output_paths_that_cannot_be_written_are_named(tmp_path, monkeypatch):
    with pytest.raises(ViewerError) as err:
        check_output_path(tmp_path / "missing" / "out.png")
    assert str(err.value) == f"output folder {tmp_path / 'missing'} does not exist"
    (tmp_path / "taken").mkdir()
    with pytest.raises(ViewerError) as err:
        check_output_path(tmp_path / "taken")
    assert str(err.value) == f"cannot write {tmp_path / 'taken'}: a folder of that name exists"
    monkeypatch.chdir(tmp_path)
    assert write_bytes_atomic("here.bin", b"1") == safe_write.Path("here.bin")
    assert (tmp_path / "here.bin").read_bytes() == b"1"


def test_an_input_is_recognised_under_any_name_but_other_paths_are_not(tmp_path):
    image = tmp_path / "in.png"
    image.write_bytes(b"png")
    os.link(image, tmp_path / "hard.png")
    for spelling in (tmp_path / "." / "in.png", tmp_path / "hard.png", str(image)):
        with pytest.raises(ViewerError, match="refusing to overwrite the input file"):
            write_bytes_atomic(spelling, b"x", inputs=[image])
        with pytest.raises(ViewerError, match="refusing to overwrite the input file"):
            write_text_atomic(spelling, "x", inputs=[image])
    assert image.read_bytes() == b"png"
    old = tmp_path / "old.txt"
    old.write_text("previous")
    write_text_atomic(old, "new", inputs=["", tmp_path / "not-there.png", image])
    assert old.read_text() == "new"


def test_files_written_together_are_all_written_or_none(tmp_path, monkeypatch):
    proto, weights = tmp_path / "net.prototxt", tmp_path / "net.caffemodel"
    proto.write_text("old net")

    def full_disk(fh):
        raise OSError(28, "No space left on device")

    with pytest.raises(ViewerError) as err:
        safe_write.write_together([(proto, lambda fh: fh.write(b"new net")),
                                   (weights, full_disk)])
    assert str(err.value) == (f"cannot write {weights} (no space left on device); so none of "
                              "net.prototxt, net.caffemodel was written, and any earlier files "
                              "there are unchanged")
    assert proto.read_text() == "old net" and not weights.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.prototxt"]

    renames, real_replace = [], os.replace

    def second_rename_fails(src, dst):
        renames.append(dst)
        if len(renames) == 2:
            raise PermissionError(13, "Permission denied")
        real_replace(src, dst)

    monkeypatch.setattr(safe_write.os, "replace", second_rename_fails)
    with pytest.raises(ViewerError, match=r"cannot write .*net.caffemodel \(permission denied\)"):
        safe_write.write_together([(proto, lambda fh: fh.write(b"new net")),
                                   (weights, lambda fh: fh.write(b"weights"))])
    assert proto.read_text() == "old net"                 # renamed, then put back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.prototxt"]


def test_nothing_is_written_inside_an_input_folder(tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    with pytest.raises(ViewerError) as err:
        write_text_atomic(photos / "maps" / ".." / "read.txt", "x", inputs=[photos])
    assert str(err.value) == (f"refusing to write {photos / 'maps' / '..' / 'read.txt'} inside "
                              f"the input folder {photos}: choose an output outside it")
    (tmp_path / "photos2").mkdir()
    write_text_atomic(tmp_path / "photos2" / "read.txt", "x", inputs=[photos])
    monkeypatch.chdir(tmp_path)                           # an empty input name is no folder
    assert write_text_atomic("photos2/b.txt", "y", inputs=[""]).read_text() == "y"
