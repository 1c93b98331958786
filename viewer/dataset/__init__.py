"""Synthetic plates, 28x28 training windows and Caffe LMDBs of Datum records.

Data flows plates -> windows -> LMDB: `plates.render_plate` draws a plate with known text and
character boxes, `windows.sample_windows` cuts labelled 28x28 windows from it, and
`lmdb_io.write_lmdb` stores them the way Caffe's Data layer reads them. `make.make_dataset`
runs the whole chain.
"""
from viewer.dataset.errors import DatasetError

__all__ = ["DatasetError"]
