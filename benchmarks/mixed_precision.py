"""float32 vs Keras mixed_bfloat16 for the seed's model at 256x256, batch 16, one policy a process.

    .venv/bin/python benchmarks/mixed_precision.py float32
    .venv/bin/python benchmarks/mixed_precision.py mixed_bfloat16

Prints training and predict img/s for two timed passes over 32 random images after a warm-up.
Run the two policies alternately (A/B/A/B) with nothing else running. A measurement only:
simplecnn does not use bfloat16 yet, and its effect on accuracy is not measured here.
"""

import sys
import time

import keras
import numpy as np

from simplecnn.config import ModelConfig
from simplecnn.models import build_model

policy = sys.argv[1] if len(sys.argv) > 1 else "float32"
keras.mixed_precision.set_global_policy(policy)
model = build_model("functional", ModelConfig())
model.compile("adam", "binary_crossentropy")
rng = np.random.default_rng(0)
x = rng.random((32, 256, 256, 3), dtype=np.float32)
y = rng.integers(0, 2, (32, 1)).astype(np.float32)
model.fit(x[:16], y[:16], batch_size=16, verbose=0)
model.predict(x[:16], batch_size=16, verbose=0)
train, predict = [], []
for _ in range(2):
    t = time.perf_counter()
    model.fit(x, y, batch_size=16, shuffle=False, verbose=0)
    train.append(len(x) / (time.perf_counter() - t))
    t = time.perf_counter()
    model.predict(x, batch_size=16, verbose=0)
    predict.append(len(x) / (time.perf_counter() - t))
print(f"{policy}: train img/s {[round(v, 2) for v in train]}, predict img/s {[round(v, 2) for v in predict]}")
