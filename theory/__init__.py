"""Analytic theory of SGD noise (paper: "Three Factors Influencing Minima in SGD")."""
from theory import discrete, escape, gibbs, landscapes, minima, noise_geometry, scaling, two_layer
from theory.discrete import (
    breaking_beta,
    finite_data_noise_factor,
    stability_limit,
    stationary_covariance,
    stationary_covariance_momentum,
    stationary_variance,
    stationary_variance_momentum,
)
from theory.gibbs import log_density, log_partition, noise, normalized_density, temperature
from theory.minima import basin_probabilities, log_ratio, log_weight, probabilities, threshold_noise
from theory.scaling import (
    Schedule,
    batch_schedule_to_lr_schedule,
    epochs,
    is_same_noise,
    lr_schedule_to_batch_schedule,
    rescale,
    rescaled_time,
    schedule_values,
)

__all__ = [
    # submodules
    "discrete", "escape", "gibbs", "landscapes", "minima", "noise_geometry", "scaling", "two_layer",
    # theory.discrete
    "breaking_beta", "finite_data_noise_factor", "stability_limit", "stationary_covariance",
    "stationary_covariance_momentum", "stationary_variance", "stationary_variance_momentum",
    # theory.gibbs
    "log_density", "log_partition", "noise", "normalized_density", "temperature",
    # theory.minima
    "basin_probabilities", "log_ratio", "log_weight", "probabilities", "threshold_noise",
    # theory.scaling
    "Schedule", "batch_schedule_to_lr_schedule", "epochs", "is_same_noise", "lr_schedule_to_batch_schedule",
    "rescale", "rescaled_time", "schedule_values",
]
