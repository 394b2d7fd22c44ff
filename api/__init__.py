"""Serving: the prediction API, the live scorer and the live drift monitor.

All three score or describe rows with the model code of the ``models`` package
(``models.artifacts.load_model`` -> ``LoadedModel.score``); ``api.serving`` decides which
model is served (ml or baseline) and switches it while running.
"""
