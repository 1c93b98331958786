"""Qt layer: the main window, its panels and the worker thread. Nothing else imports Qt."""
