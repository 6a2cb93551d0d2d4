"""Governance analysis of the sentiment model: per-label token importance, bias metrics by facet and a data
summary, written as ``analysis.json`` + ``report.md``.

The same code runs
- locally, against the local model server or the model artefact (``python -m governance.analyze``), and
- in the cloud, inside a SageMaker Processing job (scikit-learn framework image) started weekly by the
  governance state machine, against the live SageMaker endpoint.

It runs on Python >= 3.9 (the scikit-learn 1.2-1 processing image) and needs the standard library only
(boto3 when it calls an endpoint; ``sentiment_model`` when it loads a local artefact): the processing job
installs nothing. The labels, the report schema id, the bias rule and the endpoint wire format come from
``sentiment_core`` (layers/core, standard library only), which ``make governance-bundle`` puts beside this
package for the job. Docs: docs/retraining.md.
"""
