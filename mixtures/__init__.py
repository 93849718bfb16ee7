"""Deciding what to train on: observations, utility laws, plans, OT mixtures. Never imports Ray."""
from mixtures.fitting import FittedLaw, fit
from mixtures.mixture_observations import MixtureObservations, read_mixture_csv, read_regmix
from mixtures.observations import Observations, load_observations
from mixtures.optimize import FeasibleMixtures, MixtureChoice, optimize_mixture
from mixtures.performance import PerformanceModel
from mixtures.planning import frontier, marginal_value, plan
from mixtures.transport import EmbeddingSet, MixtureOT
