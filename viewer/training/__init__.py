"""Training the plate-character LeNet in PyTorch (CPU) or real Caffe, and exporting it as Caffe files.

`nets` holds the Caffe side and needs no torch: the deploy net, the train/test net with Data
layers derived from it, the solver and the options a run is asked for. `torchnet` builds a
PyTorch module from a deploy NetParameter and turns its weights back into a `CaffeNet`. `data`
reads the LMDBs, `solver` runs Caffe's SGD on them in PyTorch; `torch_train` and `caffe_train`
are the two engines' runs of `main.py train`, `artifacts` what both write, `metrics` the test
figures both report and `curves` the loss and accuracy pictures.
"""
