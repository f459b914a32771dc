"""The advisor pyfunc as MLflow "models from code": this file is logged with the model, and MLflow runs it
to get the model object (``mlflow models serve``, ``mlflow.pyfunc.load_model``). The model's data (the
``advisor.model/2`` weights file and ``advisor.json``: preprocessing, classes) are artifacts read as data
only; nothing of the model is unpickled. ``advisor predict`` and ``export`` never run this file: they check
the MLmodel and read the artifacts themselves (:mod:`advisor.deploy.mlmodel`)."""

import mlflow.models

from advisor.deploy.pyfunc import AdvisorImageModel

mlflow.models.set_model(AdvisorImageModel())
