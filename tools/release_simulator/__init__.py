"""`make simulate-release`: a discrete-time model of one release of the predict function, minute by minute,
around the real artefacts (the transformed template's deployment group, deployment configuration and hook
environment; the real hook code, verdict and the alarms it arms). simulate.py says what is modelled and
how; cloudwatch.py the CloudWatch semantics assumed; scenarios.py the scenarios and traffic levels."""
