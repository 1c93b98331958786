"""Caffe's own files: the NetParameter proto, prototxt/caffemodel pairs, LMDBs of Datum records.

No arithmetic on nets here (that is `viewer.net`): only reading, writing and checking the formats.
"""
