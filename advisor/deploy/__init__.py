"""The saved model and its uses: predict with it, log it as an MLflow pyfunc, serve and export it.

- :mod:`advisor.deploy.model` -- :class:`~advisor.deploy.model.TransferModel`, the one deployable network
  every strategy ends in (a sklearn probe converted to a ``Linear`` included); training imports it;
- :mod:`advisor.deploy.modelfile` -- its ``advisor.model/2`` file: save, and load as data only
  (``torch.load(..., weights_only=True)``, the schema in ``_model_schema.py`` checked first);
- :mod:`advisor.deploy.inference` -- a :class:`Bundle` (network, preprocessing, class names) and
  batched inference on images of any form (paths, encoded bytes, arrays);
- :mod:`advisor.deploy.resolve` -- a ``--save`` file, an MLflow model URI or a study's best model as a Bundle;
- :mod:`advisor.deploy.predict` -- ``advisor predict``: one row per image, metrics when labelled;
- :mod:`advisor.deploy.pyfunc` -- the MLflow pyfunc (models from code) that carries the network and its
  preprocessing;
- :mod:`advisor.deploy.mlmodel` -- an MLflow model folder checked before anything in it is read, then read as
  data only;
- :mod:`advisor.deploy.exporting` -- an export file with its preprocessing as JSON, checked against PyTorch;
- :mod:`advisor.deploy.formats` -- the export formats' registry (ONNX, TorchScript): one entry and one file each.

Importing this package is cheap; torch and MLflow are imported by the modules that need them.
"""
