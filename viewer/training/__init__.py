"""Training the plate-character LeNet in PyTorch (CPU) and exporting it as Caffe files.

`nets` holds the Caffe side and needs no torch: the deploy net, the train/test net with Data
layers derived from it, and the solver. `torchnet` builds a PyTorch module from a deploy
NetParameter and turns its weights back into a `CaffeNet`. `data` reads the LMDBs, `solver`
runs Caffe's SGD on them, `curves` draws the loss and accuracy PNG, `cli` is `main.py train`.
"""
