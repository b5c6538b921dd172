"""Split the raw points into normalised train and test sets."""

import numpy as np
import valohai

valohai.prepare(step="preprocess", default_parameters={"test_fraction": 0.25, "seed": 7})

path = valohai.inputs("raw").path()
data = np.loadtxt(path, delimiter=",", skiprows=1)
features, labels = data[:, :-1], data[:, -1]
features = (features - features.mean(axis=0)) / features.std(axis=0)

rng = np.random.default_rng(valohai.parameters("seed").value)
order = rng.permutation(len(labels))
cut = int(len(labels) * (1 - valohai.parameters("test_fraction").value))
train, test = order[:cut], order[cut:]
np.savez(valohai.outputs().path("train.npz"), x=features[train], y=labels[train])
np.savez(valohai.outputs().path("test.npz"), x=features[test], y=labels[test])

with valohai.logger() as logger:
    logger.log("rows", len(labels))
    logger.log("features", int(features.shape[1]))
