"""Canary releases of the predict function: what the CodeDeploy hooks check, split by job.

- settings: the hooks' configuration and the canary rule;
- release: the release as the deployment's AppSpec names it, the CodeDeploy adapter, run_hook;
- smoke: BeforeAllowTraffic (smoke tests of the new version, then arm the alarms);
- alarms: the version-aware rollback alarms (arm, idle, disarm);
- verdict: the rule applied to one window (pure);
- cloudwatch: AfterAllowTraffic (read the window from CloudWatch, judge it, disarm the alarms);
- observability: the hooks' Logger and Metrics.
"""
