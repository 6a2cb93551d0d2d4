"""sentiment_core: what every deployable of sentiment-api agrees on, in the standard library only.

- ``settings``: the one configuration pattern (typed readers of environment variables, one error type);
- ``contract``: the service's shared constants (labels, limits, header names, smoke texts, the bias rule);
- ``wire``: the SageMaker endpoint wire format (request encoding, both answer formats).

It runs on Python >= 3.9 so that the governance processing job (scikit-learn image, Python 3.9, nothing
installed) can run the same modules: ``make governance-bundle`` copies them next to the governance package.
"""
