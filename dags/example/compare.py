"""Accuracy of every model of a sweep on the test set; publishes the best one as best-model.npz."""

import os
import shutil

import numpy as np
import valohai

valohai.prepare(step="compare")
data = np.load(valohai.inputs("dataset").path())
accuracies = {}
for path in valohai.inputs("models").paths():
    model = np.load(path)
    predicted = (data["x"] @ model["weights"] + float(model["bias"])) > 0
    accuracies[path] = float(np.mean(predicted == (data["y"] > 0.5)))
best = max(accuracies, key=accuracies.get)
shutil.copy(best, valohai.outputs().path("best-model.npz"))
print(f"best model {os.path.basename(best)} with accuracy {accuracies[best]:.3f} of {len(accuracies)}")
with valohai.logger() as logger:
    logger.log("best_accuracy", accuracies[best])
    logger.log("best_model", os.path.basename(best))
