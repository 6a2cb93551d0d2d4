"""The predict function's own code (shipped only in its CodeUri): its configuration, the POST /predict
request, the use case, and the SageMaker endpoint client."""
