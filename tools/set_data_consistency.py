"""Set the data-consistency steps of the shipped DeepSTEM weights from ``weights/train_config.json``.

The EM steps that follow the encoder in :func:`deepstem_utils.reconstruct` (``em_steps``, ``em_power``) are
fixed, not learned, and the shipped encoder was trained without them (``em_in_training`` False): changing them
does not change a single weight. This script writes the committed configuration's values into the shipped
file and its ``.json`` (configuration, SHA-256, size; the calibration is kept, so rerun
``tools/calibrate_weights.py`` after it), which is what ``deepstem train --config
deepstem_utils/weights/train_config.json`` would write, without the 30 min of training.

Run: .venv/bin/python tools/set_data_consistency.py
"""

from __future__ import annotations

import json

from deepstem_utils.network.weights import WEIGHTS, load_model, save_model

KEYS = ("em_steps", "em_power", "em_in_training")


def main():
    committed = json.loads(WEIGHTS.with_name("train_config.json").read_text())
    if committed.get("em_in_training", True):
        raise SystemExit("the committed config trains with the EM steps: retrain instead (deepstem train)")
    net, config = load_model(WEIGHTS)
    before = {k: config.get(k) for k in KEYS}
    config.update({k: committed[k] for k in KEYS if k in committed})
    record_path = WEIGHTS.with_suffix(".json")
    kept = json.loads(record_path.read_text())  # the calibration and anything else beside the weights
    record = save_model(net, WEIGHTS, config, overwrite=True)
    record_path.write_text(json.dumps({**kept, **record}, indent=2) + "\n")
    print(f"{WEIGHTS.name}: {before} -> {({k: config.get(k) for k in KEYS})}")


if __name__ == "__main__":
    main()
