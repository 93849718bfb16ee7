"""Deciding what to train on: observations, utility laws, plans, OT mixtures. Never imports Ray."""
