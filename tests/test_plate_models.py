"""The two bundled plate nets: `read` takes the strongest (BNNet) unless `--model lenet`, the
other commands and the viewer the tutorial's LeNet, and both read the sample plate."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from viewer.cli import main
from viewer.files import paths

SAMPLE = str(paths.SAMPLE_PLATE)


def read_json(capsys, *flags: str) -> dict:
    assert main(["read", SAMPLE, "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("model", ["lenet", "bnnet"])
def test_each_bundled_model_reads_the_sample_plate(capsys, model):
    row = read_json(capsys, "--model", model)
    assert row["text"] == "RK857AI"
    assert all(0.5 < letter["prob"] <= 1.0 for letter in row["letters"])


def test_read_takes_the_strongest_bundled_model_and_map_takes_lenet(capsys, tmp_path):
    assert paths.strongest_plate_model().name == "bnnet"
    assert read_json(capsys) == read_json(capsys, "--model", "bnnet")
    assert read_json(capsys) != read_json(capsys, "--model", "lenet")   # another net's numbers
    for name, flags in (("default", []), ("lenet", ["--model", "lenet"])):
        assert main(["map", SAMPLE, "--scale", "0.3", "--out", str(tmp_path / name),
                     "--json", *flags]) == 0
        capsys.readouterr()
    assert (tmp_path / "default" / "featuremap.npz").read_bytes() == \
        (tmp_path / "lenet" / "featuremap.npz").read_bytes()


def test_model_and_prototxt_together_is_one_line(capsys):
    code = main(["read", SAMPLE, "--model", "lenet", "--prototxt", str(paths.FCN_PROTOTXT),
                 "--weights", str(paths.FCN_WEIGHTS)])
    err = capsys.readouterr().err
    assert code == 2 and err == "error: give --model or --prototxt/--weights, not both\n"


def test_without_bnnets_files_read_falls_back_to_lenet(capsys, monkeypatch, tmp_path):
    missing = replace(paths.PLATE_MODELS["bnnet"], stem="no_such_model")
    monkeypatch.setitem(paths.PLATE_MODELS, "bnnet", missing)
    assert paths.strongest_plate_model().name == "lenet"
    assert read_json(capsys) == read_json(capsys, "--model", "lenet")
    assert main(["read", SAMPLE, "--model", "bnnet"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: the bnnet model is not installed: {missing.fcn_prototxt} is "
                   "missing (make model trains it)\n")


def test_plate_model_of_names_the_classifier_and_its_twin():
    for model in paths.PLATE_MODELS.values():
        assert paths.plate_model_of(model.prototxt) == model
        assert paths.plate_model_of(model.fcn_prototxt) == model
    assert paths.plate_model_of(paths.SAMPLE_PLATE) is None
