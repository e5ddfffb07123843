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

import torch

from deepstem_utils.network.weights import WEIGHTS, WEIGHTS_FORMAT, sha256

KEYS = ("em_steps", "em_power", "em_in_training")


def main():
    committed = json.loads(WEIGHTS.with_name("train_config.json").read_text())
    data = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    if data.get("format") != WEIGHTS_FORMAT:
        raise SystemExit(f"{WEIGHTS} is not a DeepSTEM weights file")
    if committed.get("em_in_training", True):
        raise SystemExit("the committed config trains with the EM steps: retrain instead (deepstem train)")
    before = {k: data["config"].get(k) for k in KEYS}
    data["config"].update({k: committed[k] for k in KEYS if k in committed})
    tmp = WEIGHTS.with_suffix(".pt.tmp")
    torch.save(data, tmp)
    tmp.replace(WEIGHTS)
    record_path = WEIGHTS.with_suffix(".json")
    record = json.loads(record_path.read_text())
    record.update(sha256=sha256(WEIGHTS), bytes=WEIGHTS.stat().st_size, config=data["config"])
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{WEIGHTS.name}: {before} -> {({k: data['config'].get(k) for k in KEYS})}")


if __name__ == "__main__":
    main()
