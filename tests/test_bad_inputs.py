"""The corpus of bad inputs: exit 2, one short line, no output, the input untouched."""

from __future__ import annotations

import gzip
import subprocess
import sys
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from conftest import digest, run_cli, write_ct_series
from dipmed.phantom import ct_phantom
from dipmed.volume import Volume


def _nifti(path: Path, shape) -> Path:
    nib.save(nib.Nifti1Image(np.ones(shape, np.float32), np.eye(4)), path)
    return path


def _missing(tmp: Path) -> Path:
    return tmp / "no_such_scan.nii.gz"


def _empty_folder(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _folder_without_dicom(tmp: Path) -> Path:
    folder = tmp / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("not an image\n")
    (folder / "scan.dcm").write_bytes(np.random.default_rng(0).bytes(3000))
    return folder


def _truncated_gz(tmp: Path) -> Path:
    path = _nifti(tmp / "whole.nii.gz", (40, 40, 40))
    data = path.read_bytes()
    cut = tmp / "truncated.nii.gz"
    cut.write_bytes(data[: len(data) // 2])
    path.unlink()
    return cut


def _text_as_gz(tmp: Path) -> Path:
    path = tmp / "text.nii.gz"
    path.write_text("this is a text file, not an image\n")
    return path


def _terabyte_header(tmp: Path) -> Path:
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    image.header["dim"][1:4] = [30000, 30000, 30000]
    path = tmp / "huge.nii"
    path.write_bytes(image.header.binaryblock + b"\0" * 4 + b"\0" * 32)
    return path


def _dicom_without_pixels(tmp: Path) -> Path:
    folder = tmp / "nopixels"
    write_ct_series(folder, Volume(ct_phantom((16, 16, 16)), np.eye(4)))
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        del ds.PixelData
        ds.save_as(path)
    return folder


def _random_dcm(tmp: Path) -> Path:
    path = tmp / "random.dcm"
    path.write_bytes(np.random.default_rng(1).bytes(5000))
    return path


def _two_series(tmp: Path) -> Path:
    folder = tmp / "two"
    for number in (3, 4):
        write_ct_series(
            folder / f"s{number}",
            Volume(ct_phantom((16, 16, 16)), np.eye(4)),
            SeriesInstanceUID=generate_uid(),
            SeriesNumber=number,
        )
    return folder


def _missing_slice(tmp: Path) -> Path:
    folder = tmp / "gap"
    write_ct_series(folder, Volume(ct_phantom((16, 16, 16)), np.eye(4)))
    (folder / "IM00008.dcm").unlink()
    return folder


def _multiframe_without_spacing(tmp: Path) -> Path:
    from dicom_factory import write_stripped_enhanced_mr

    frames = np.zeros((10, 64, 64), np.uint16)
    return write_stripped_enhanced_mr(tmp / "stripped.dcm", frames, pixel_spacing=None)


CORPUS = {
    "missing path": (_missing, "does not exist"),
    "empty folder": (_empty_folder, "is empty"),
    "folder without DICOM": (_folder_without_dicom, "no DICOM files"),
    "truncated .nii.gz": (_truncated_gz, "truncated or corrupt"),
    "text file named .nii.gz": (_text_as_gz, "not a readable NIfTI"),
    "2D image": (lambda t: _nifti(t / "flat.nii.gz", (16, 16)), "is 2D"),
    "5D image": (lambda t: _nifti(t / "five.nii.gz", (16, 16, 16, 2, 3)), "is 5D"),
    "terabyte header": (_terabyte_header, "over dipmed's limit"),
    "DICOM without pixel data": (_dicom_without_pixels, "none with image pixel data"),
    "random bytes named .dcm": (_random_dcm, "neither NIfTI"),
    "two series, none chosen": (_two_series, "choose one with --series"),
    "missing slice": (_missing_slice, "uneven slice spacing"),
    "4D without --volume": (lambda t: _nifti(t / "bold.nii.gz", (16, 16, 16, 4)), "--volume"),
    "multi-frame without any geometry": (_multiframe_without_spacing, "has no PixelSpacing"),
}
LISTED_BY_INFO = ("two series, none chosen", "4D without --volume")  # info exits 0 on these


def _assert_refused(code: int, err: str, expected: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dipmed: error: ") and expected in lines[0]
    assert "Traceback" not in err and len(lines[0]) < 400


@pytest.mark.parametrize("case", list(CORPUS))
def test_bad_input_is_refused_cleanly(tmp_path, capsys, case):
    make, expected = CORPUS[case]
    source = make(tmp_path)
    before = digest(source) if source.exists() else None
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    commands = [["convert", source, out_dir / "result.nii.gz"]]
    if case not in LISTED_BY_INFO:  # info lists the series or volumes instead (exit 0)
        commands.append(["info", source])
    for command in commands:
        code, _, err = run_cli(capsys, *command)
        _assert_refused(code, err, expected)
    assert list(out_dir.iterdir()) == []  # no output, no temporary left behind
    assert (digest(source) if source.exists() else None) == before


def test_terabyte_header_is_refused_before_allocating(tmp_path, capsys):
    source = _terabyte_header(tmp_path)
    tracemalloc.start()
    code, _, err = run_cli(capsys, "info", source)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    _assert_refused(code, err, "over dipmed's limit")
    assert peak < 50e6


def test_output_equal_to_input_is_refused(tmp_path, capsys, ct_series):
    before = digest(ct_series)
    code, _, err = run_cli(capsys, "convert", ct_series, ct_series, "--overwrite")
    _assert_refused(code, err, "is the input")
    nifti = _nifti(tmp_path / "a.nii.gz", (16, 16, 16))
    code, _, err = run_cli(capsys, "convert", nifti, nifti, "--overwrite")
    _assert_refused(code, err, "is the input")
    code, _, err = run_cli(capsys, "convert", ct_series, ct_series / "inside")
    _assert_refused(code, err, "nest with input")
    assert digest(ct_series) == before


def test_existing_output_needs_overwrite(tmp_path, capsys, ct_series):
    target = tmp_path / "out.nii.gz"
    target.write_bytes(b"precious")
    code, _, err = run_cli(capsys, "convert", ct_series, target)
    _assert_refused(code, err, "--overwrite")
    assert target.read_bytes() == b"precious"
    code, _, err = run_cli(capsys, "convert", ct_series, target, "--overwrite")
    assert code == 0, err
    assert nib.load(target).shape == (19, 17, 16)


def test_existing_dicom_folder_is_replaced_only_with_overwrite(tmp_path, capsys, ct_series):
    target = tmp_path / "derived"
    assert run_cli(capsys, "convert", ct_series, target)[0] == 0
    stamp = digest(target)
    _assert_refused(*run_cli(capsys, "convert", ct_series, target)[::2], "--overwrite")
    assert digest(target) == stamp
    assert run_cli(capsys, "convert", ct_series, target, "--overwrite")[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct_series", "derived"]


def test_nifti_to_dicom_output_is_refused(tmp_path, capsys):
    source = _nifti(tmp_path / "a.nii.gz", (16, 16, 16))
    code, _, err = run_cli(capsys, "convert", source, tmp_path / "dicom_out")
    _assert_refused(code, err, "DICOM output needs DICOM input")
    assert not (tmp_path / "dicom_out").exists()


def test_unknown_series_and_usage_errors(tmp_path, capsys):
    folder = _two_series(tmp_path)
    _assert_refused(*run_cli(capsys, "info", folder, "--series", "99")[::2], "matches no series")
    _assert_refused(*run_cli(capsys, "convert", folder)[::2], "required")
    _assert_refused(*run_cli(capsys, "frobnicate")[::2], "invalid choice")


def test_series_listing_and_choice(tmp_path, capsys):
    folder = _two_series(tmp_path)
    code, out, _ = run_cli(capsys, "info", folder)
    assert code == 0 and "2 DICOM series" in out
    code, _, err = run_cli(capsys, "convert", folder, tmp_path / "s4.nii.gz", "--series", "4")
    assert code == 0, err


def test_console_script_prints_no_traceback(tmp_path):
    """The real process: exit status 2 and one line, as a shell script would see it."""
    result = subprocess.run(
        [sys.executable, "-m", "dipmed", "info", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr


def test_gzip_of_garbage_is_refused(tmp_path, capsys):
    path = tmp_path / "junk.nii.gz"
    path.write_bytes(gzip.compress(b"\x01" * 1000))
    _assert_refused(*run_cli(capsys, "info", path)[::2], "NIfTI")


def test_a_failure_while_writing_leaves_nothing_and_keeps_the_old_output(
    tmp_path, capsys, ct_series, monkeypatch
):
    import dipmed.io as io

    target = tmp_path / "derived"
    assert run_cli(capsys, "convert", ct_series, target)[0] == 0
    stamp = digest(target)

    def fail_halfway(volume, folder, **kwargs):
        folder.mkdir()
        (folder / "IM00001.dcm").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(io, "write_derived_series", fail_halfway)
    with pytest.raises(OSError):
        run_cli(capsys, "convert", ct_series, target, "--overwrite")
    assert digest(target) == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct_series", "derived"]
