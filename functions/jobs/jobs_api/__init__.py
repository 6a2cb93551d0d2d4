"""The bulk jobs API: POST /jobs, GET /jobs/{job_id}, POST /jobs/{job_id}/start (jobs_api.usecase)."""
