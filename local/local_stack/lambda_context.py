"""A LambdaContext like the one the Python runtime passes to a handler, for one local invocation: the
template's memory (512 MB) and timeout (3 s), invoked through the alias ``live``."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
TIMEOUT_S = 3.0
MEMORY_MB = 512
ALIAS = "live"  # template.yaml: AutoPublishAlias; API Gateway invokes the alias


@dataclass(frozen=True, slots=True)
class LocalLambdaContext:
    function_name: str
    function_version: str = "1"
    memory_limit_in_mb: int = MEMORY_MB
    timeout_s: float = TIMEOUT_S
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    deadline: float = field(default=0.0)
    identity: None = None
    client_context: None = None
    tenant_id: None = None

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}:{ALIAS}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{time.strftime('%Y/%m/%d', time.gmtime())}/[{self.function_version}]local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def new_context(function_name: str, timeout_s: float = TIMEOUT_S) -> LocalLambdaContext:
    """A context whose clock starts now, as the runtime's does when the invocation begins."""
    return LocalLambdaContext(function_name=function_name, timeout_s=timeout_s, deadline=time.monotonic() + timeout_s)
