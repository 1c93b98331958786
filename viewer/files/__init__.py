"""The user's files and ours: inputs opened safely, outputs written atomically, bundled paths.

The lowest layer with `viewer.errors` and `viewer.progress`: everything else may use it.
"""
