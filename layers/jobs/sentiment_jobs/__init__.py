"""The bulk jobs' shared code, in its own layer (only the jobs API function and the jobs worker carry it):
the job record and its store (sentiment_jobs.store)."""
