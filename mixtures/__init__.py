"""Deciding what to train on: observations, utility laws, plans, OT mixtures. Never imports Ray."""
from mixtures.fitting import FittedLaw, fit
from mixtures.observations import Observations, load_observations
from mixtures.planning import frontier, marginal_value, plan
