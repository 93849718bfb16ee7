"""Per-document scores: Arrow or numpy in, float columns out. Never imports Ray."""
