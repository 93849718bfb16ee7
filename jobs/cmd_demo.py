"""Placeholder until written."""


def register(sub):
    return None
