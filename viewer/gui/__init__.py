"""Qt layer: the main window, its panels and the worker thread. Nothing else imports Qt.

Arrays are row-major (y, x) everywhere in the core, so pyqtgraph is told so once, here, before
any of its items is made by any module of this package.
"""
import pyqtgraph as pg

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
