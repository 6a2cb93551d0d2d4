"""sentiment_api: the HTTP request path that the API functions (predict, explain) share: configuration,
domain errors and the one place that maps them to HTTP, correlation ids, Logger/Metrics/Tracer, the per-user
rate limiter and JSON-schema validation. What only one function needs lives in that function's folder."""
