"""The explain function's own code (shipped only in its CodeUri): its configuration and the governance
report reader behind GET /explain."""
