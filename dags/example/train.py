"""Logistic regression by gradient descent; the learning rate decides how good it gets."""

import numpy as np
import valohai

valohai.prepare(step="train", default_parameters={"learning_rate": 0.1, "epochs": 50, "features": 2})
learning_rate = valohai.parameters("learning_rate").value
epochs = valohai.parameters("epochs").value
n_features = valohai.parameters("features").value

data = np.load(valohai.inputs("dataset").path())
x, y = data["x"], data["y"]
assert x.shape[1] == n_features, f"expected {n_features} features, got {x.shape[1]}"
weights, bias = np.zeros(n_features), 0.0
for epoch in range(1, epochs + 1):
    predicted = 1 / (1 + np.exp(-(x @ weights + bias)))
    loss = float(-np.mean(y * np.log(predicted + 1e-9) + (1 - y) * np.log(1 - predicted + 1e-9)))
    weights -= learning_rate * x.T @ (predicted - y) / len(y)
    bias -= learning_rate * float(np.mean(predicted - y))
    if epoch % 10 == 0 or epoch == epochs:
        with valohai.logger() as logger:
            logger.log("epoch", epoch)
            logger.log("loss", round(loss, 5))

model_name = f"model-lr{learning_rate}.npz"
model_path = valohai.outputs().path(model_name)
np.savez(model_path, weights=weights, bias=bias, learning_rate=learning_rate)
with valohai.output_properties() as properties:
    properties.add(file=model_name, properties={"learning_rate": learning_rate, "loss": loss})
