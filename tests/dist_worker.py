"""One process of a multi-process training job, for tests/test_distributed.py.

usage: KERAS_BACKEND=jax python dist_worker.py DATA OUT WEIGHTS.npz N I PORT [EPOCHS]
With N == 1 it trains in a single process (no distribution), for comparison.
"""

import sys

import numpy as np

from simplecnn import distributed
from simplecnn.config import TrainConfig
from simplecnn.models import leaf_layers
from simplecnn.training import train

data, out, weights, n, i, port = sys.argv[1:7]
epochs = int(sys.argv[7]) if len(sys.argv) > 7 else 2
if int(n) > 1:
    distributed.initialize(distributed.DistConfig(f"127.0.0.1:{port}", int(n), int(i)))
# Raw weights (no weight average) and a learning rate of 3e-4: the comparison is of what the
# all-reduce does to each step. At the default 1e-3 these random-colour images give a first
# epoch loss near 2.3, a rough start that amplifies float rounding into weight differences of
# 3e-3 (4% of a kernel's scale) and 1.2% in recomputed BatchNorm statistics (measured).
result = train(data, out, TrainConfig(image_size=32, epochs=epochs, batch_size=8, augment=False,
                                      validation_split=0.0, seed=5, ema_epochs=0,
                                      learning_rate=3e-4), verbose=0)  # fmt: skip
arrays = {f"{l.name}/{w.name}": np.asarray(w.numpy()) for l in leaf_layers(result.model) for w in l.weights}
np.savez(weights, **arrays)
print("loss", result.history["loss"])
