"""A SageMaker-compatible model server (werkzeug WSGI) for the local stack: app (the WSGI app), faults
(fault injection, tests only), __main__ (the command line).

``python -m local_stack.model_server --host 127.0.0.1 --port 8080 --model-dir model/artefacts/minilm-sentiment
--endpoint-name sentiment-local``

It speaks
- the SageMaker runtime API: ``POST /endpoints/{name}/invocations`` (what boto3's ``sagemaker-runtime``
  ``invoke_endpoint`` calls when ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` points here), and
- the SageMaker container contract: ``GET /ping`` and ``POST /invocations``.

Requests: ``text/csv`` (one or more RFC 4180 records, one text per record, UTF-8) or ``application/json``
(``{"text": "..."}`` or ``{"instances": [{"text": "..."}, ...]}``). Answers are ``application/json``:
one object ``{"predicted_label", "probability", "probabilities", "labels", "model_version"}`` for a single
text (one CSV record or ``{"text": ...}``), ``{"predictions": [...]}`` for several CSV records or any
``instances`` request. The model version is also sent as
``X-Amzn-SageMaker-Custom-Attributes: model_version=<v>`` (boto3's ``CustomAttributes``).

Errors are shaped like the SageMaker runtime's (rest-json: ``x-amzn-ErrorType`` header and a body
``{"__type", "message"}``), so botocore raises a ``ClientError`` with that code:

- unknown endpoint name: 400 ``ValidationError``;
- undecodable/malformed body: 400 ``ModelError`` (with ``OriginalStatusCode``/``OriginalMessage`` like
  SageMaker's, which reports container failures as ``ModelError``);
- unsupported ``Content-Type``: 415, unacceptable ``Accept``: 406, body over 6 MiB: 413 (all ``ModelError``);
- anything unexpected: 500 ``InternalFailure`` with a generic message (details only in the log).

One log line per request (method, path, status, number of texts, duration, correlation id); never the text.
Fault injection: ``app.faults`` is consulted before each invocation (see :class:`Faults`). The default injects
nothing (faults.py). ``--enable-fault-injection`` (here, or on ``python -m local_stack serve``) installs
:class:`CorrelationIdFaults`: an invocation whose correlation id (``CustomAttributes: correlation_id=...``, which
the predict function fills from the client's ``x-correlation-id``) is ``fault-<kind>-<anything>`` gets that
fault (throttling, 5xx, timeout, connection reset, unusable answers; see ``FAULT_KINDS``). Never on by default.
"""
