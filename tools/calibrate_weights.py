"""Measure the one-S-atom level of the shipped networks and store it beside their weights.

Writes the key ``calibration`` into ``deepstem_utils/weights/deepstem.json`` and
``supervised_unet.json`` (the ``.pt`` files and their SHA-256 are not touched).
:func:`deepstem_utils.find_atoms` starts its mixture model there (see
:func:`deepstem_utils.evaluation.measure_one_atom_fraction`). About 2 min per network on 2 cores.

Run: .venv/bin/python tools/calibrate_weights.py
"""

from __future__ import annotations

import json

from deepstem_utils.evaluation.calibration import measure_one_atom_fraction
from deepstem_utils.network.weights import SUPERVISED_WEIGHTS, WEIGHTS


def main():
    for path in (WEIGHTS, SUPERVISED_WEIGHTS):
        calibration = measure_one_atom_fraction(path)
        record_path = path.with_suffix(".json")
        record = json.loads(record_path.read_text())
        record["calibration"] = calibration
        record_path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"{path.name}: one_atom_fraction {calibration['one_atom_fraction']:.3f} "
              f"(IQR {calibration['iqr']:.3f} over {calibration['frames']} frames)")


if __name__ == "__main__":
    main()
