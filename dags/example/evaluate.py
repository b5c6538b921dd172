"""Accuracy of one model on the test set, written as a prediction summary."""

import json
import os

import numpy as np
import valohai

valohai.prepare(step="evaluate")
model_path = valohai.inputs("model").path()
model = np.load(model_path)
data = np.load(valohai.inputs("dataset").path())
predicted = (data["x"] @ model["weights"] + float(model["bias"])) > 0
accuracy = float(np.mean(predicted == (data["y"] > 0.5)))

name = os.path.splitext(os.path.basename(model_path))[0]
with open(valohai.outputs().path(f"{name}.json"), "w") as summary:
    json.dump({"model": os.path.basename(model_path), "accuracy": accuracy}, summary)
with valohai.logger() as logger:
    logger.log("accuracy", accuracy)
