"""The physics-informed autoencoder (chapters 3 and 4): training data, network, training, :func:`reconstruct`.

* :mod:`.dataset` — simulated frames with ground truth and the distribution of probes they are drawn from.
* :mod:`.model` — the encoder (U-Net, softplus, atom blur), the fixed physical decoder, the Wiener channel.
* :mod:`.weights` — weights files: the shipped ones, writing, checking and reading them.
* :mod:`.train` — self-supervised training (binomial split, Poisson loss) and the supervised baseline.
* :mod:`.reconstruction` — :func:`reconstruct`: a frame in, its object function out.
"""

from .dataset import Frame, random_probe, simulate_frame
from .model import UNet, decode
from .reconstruction import reconstruct
from .weights import SUPERVISED_WEIGHTS, WEIGHTS, load_model, save_model, weights_calibration

__all__ = ["Frame", "random_probe", "simulate_frame", "UNet", "decode", "reconstruct",
           "SUPERVISED_WEIGHTS", "WEIGHTS", "load_model", "save_model", "weights_calibration"]
