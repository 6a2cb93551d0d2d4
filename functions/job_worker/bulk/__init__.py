"""The bulk jobs' worker: the tasks of the jobs state machine (statemachines/jobs.asl.json), as plain
functions (bulk.steps) over a job's objects (bulk.objects), rows (bulk.rows) and results (bulk.results)."""
