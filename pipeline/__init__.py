"""Moving data at scale: shards, stages, the Ray executor, sidecars and the ledger."""
