"""Is the tube right? Faithfulness, localisation and sanity metrics, and baselines to beat.

Pure functions over a model, a clip and a tube; none of them changes the model (the
sanity check randomises a deep copy).

* :mod:`.faithfulness`: deletion and insertion over space-time (Petsiuk et al. 2018),
  by voxel, frame or connected salient region, with their AUC.
* :mod:`.localisation`: 3-D pointing game, energy inside the ground truth, IoU of the
  top-|G| voxels, temporal hit.
* :mod:`.sanity`: cascading randomisation (Adebayo et al. 2018), Spearman correlation.
* :mod:`.baselines`: uniform, centre Gaussian, random, frame-difference motion energy.
* :mod:`.groundtruth`: per-frame boxes (JSON) or a mask (.npy) mapped onto a clip.
* :mod:`.concentration`: how concentrated a tube is (fraction above 0.5, spatial spread).
* :mod:`.protocol`: the scoring settings, one tube scored, the forwards a run counts;
  :mod:`.scoring`: every tube of one clip (``evaluate VIDEO``);
* :mod:`.benchmark`: the ground-truth benchmark's configuration and result;
  :mod:`.benchmark_run`: running it (import them from there: they load the embedded model).

Example:
    >>> from saliency_tubes.metrics import deletion, pointing_game
    >>> tubes = explainer(clip, classes=[target])              # doctest: +SKIP
    >>> deletion(model, clip, tubes.maps[0, 0], target).auc    # doctest: +SKIP
    >>> pointing_game(tubes.maps[0, 0], mask)                  # doctest: +SKIP
"""

from __future__ import annotations

from .baselines import BASELINES, baseline_fn, centre_gaussian, motion_energy, random_tube, uniform
from .concentration import STATS_THRESHOLD, StatsBuilder, TubeStats, tube_stats
from .faithfulness import (
    SUBSTRATES,
    UNITS,
    Curve,
    auc,
    curve_forwards,
    deletion,
    gaussian_blur,
    insertion,
    make_substrate,
    perturbation_curve,
    perturbation_units,
)
from .groundtruth import GroundTruth, boxes_mask, load_ground_truth
from .localisation import energy_inside, iou_top, localisation, pointing_game, temporal_hit
from .sanity import (
    SanityResult,
    cascade_layers,
    cascading_randomization,
    explainer_fn,
    gaussian_like,
    rankdata,
    sanity_check,
    sanity_steps,
    spearman,
)

__all__ = [
    "STATS_THRESHOLD",
    "StatsBuilder",
    "TubeStats",
    "tube_stats",
    "BASELINES",
    "SUBSTRATES",
    "UNITS",
    "Curve",
    "GroundTruth",
    "SanityResult",
    "auc",
    "baseline_fn",
    "boxes_mask",
    "cascade_layers",
    "cascading_randomization",
    "centre_gaussian",
    "curve_forwards",
    "deletion",
    "energy_inside",
    "explainer_fn",
    "gaussian_blur",
    "gaussian_like",
    "insertion",
    "iou_top",
    "load_ground_truth",
    "localisation",
    "make_substrate",
    "motion_energy",
    "perturbation_curve",
    "perturbation_units",
    "pointing_game",
    "random_tube",
    "rankdata",
    "sanity_check",
    "sanity_steps",
    "spearman",
    "temporal_hit",
    "uniform",
]
