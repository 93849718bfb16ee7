"""Deciding what to train on: observations, utility laws, plans, OT mixtures. Never imports Ray."""
from thresher.mixtures.fitted_law import FittedLaw
from thresher.mixtures.fitting import fit
from thresher.mixtures.mixture_observations import MixtureObservations, read_mixture_csv, read_regmix
from thresher.mixtures.observations import Observations, load_observations
from thresher.mixtures.optimize import FeasibleMixtures, MixtureChoice, optimize_mixture
from thresher.mixtures.performance import PerformanceModel
from thresher.mixtures.planning import frontier, marginal_value, plan
from thresher.mixtures.transport import EmbeddingSet, MixtureOT

__all__ = [
    "EmbeddingSet", "FeasibleMixtures", "FittedLaw", "MixtureChoice", "MixtureObservations", "MixtureOT",
    "Observations", "PerformanceModel", "fit", "frontier", "load_observations", "marginal_value",
    "optimize_mixture", "plan", "read_mixture_csv", "read_regmix",
]
