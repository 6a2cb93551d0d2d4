"""The local DynamoDB stand-in keeps the table's items and nothing else: moto's instance tracking (every
model object it ever creates, for a dashboard the stack does not serve) is dropped after each request."""

from __future__ import annotations

import gc
import threading

import boto3
from local_stack import template
from local_stack.dynamodb import start_dynamodb
from local_stack.lambda_context import REGION
from local_stack.servers import url_of
from moto.dynamodb.models.dynamo_type import Item


def test_updates_leave_only_the_tables_items_in_memory() -> None:
    # Earlier tests' garbage first: a server object of theirs finalised by the gc.collect() below would close
    # a file descriptor number that this test's server may have been given since (seen once: waitress's
    # trigger pipe, EBADF at shutdown).
    gc.collect()
    server = start_dynamodb()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = boto3.client(
            "dynamodb",
            endpoint_url=url_of(server),
            region_name=REGION,
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        table = "standin-memory-test"  # moto's backend is shared in this process: a table of its own
        template.table("RateLimitTable").create(client, table)
        for i in range(600):
            client.update_item(
                TableName=table,
                Key={"pk": {"S": f"standin-caller-{i % 20}"}},
                UpdateExpression="SET tat = :t",
                ExpressionAttributeValues={":t": {"N": str(i)}},
            )
        gc.collect()
        ours = [o for o in gc.get_objects() if isinstance(o, Item) and str(o.hash_key.value).startswith("standin-")]
        assert len(ours) == 20  # one per key, not two per request
        client.delete_table(TableName=table)
    finally:
        server.shutdown()
        thread.join(timeout=10)
