"""A net as Caffe runs it: its layers, blob and parameter shapes, geometry and cost.

Pure arithmetic on a `CaffeNet`, written once so that surgery, engines and maps agree.
"""
