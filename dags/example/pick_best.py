"""Choose the model with the best accuracy and publish it as best-model.npz."""

import json
import os
import shutil

import valohai

valohai.prepare(step="pick-best")
summaries = []
for path in valohai.inputs("predictions").paths():
    with open(path) as summary:
        summaries.append(json.load(summary))
best = max(summaries, key=lambda summary: summary["accuracy"])
models = {os.path.basename(path): path for path in valohai.inputs("models").paths()}
shutil.copy(models[best["model"]], valohai.outputs().path("best-model.npz"))
print(f"best model {best['model']} with accuracy {best['accuracy']:.3f} of {len(summaries)}")
with valohai.logger() as logger:
    logger.log("best_accuracy", best["accuracy"])
    logger.log("best_model", best["model"])
