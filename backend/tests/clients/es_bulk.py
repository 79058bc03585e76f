"""Sends log documents to Vigil with the official Elasticsearch Python client's helpers.bulk
(which sends PUT /_bulk and refuses a server whose answers lack X-Elastic-Product).

Environment: VIGIL_URL, VIGIL_TOKEN, MARKER. Prints one JSON line: the helper's result.
"""
import json
import os
from datetime import datetime, timezone

from elasticsearch import Elasticsearch, helpers

marker = os.environ["MARKER"]
client = Elasticsearch(os.environ["VIGIL_URL"], api_key=os.environ["VIGIL_TOKEN"], request_timeout=10)
now = datetime.now(timezone.utc).isoformat()
actions = [
    {"_index": "orders", "_source": {"@timestamp": now, "message": f"{marker} order shipped",
                                      "log.level": "info", "service.name": "shipping", "host.name": "ship-1"}},
    {"_index": "orders", "_id": "fixed-1", "@timestamp": now, "message": f"{marker} label printed",
     "log": {"level": "warn"}, "carrier": "dhl"},
    {"_op_type": "create", "_index": "orders-2026.12.01", "@timestamp": now, "message": f"ERROR {marker} pickup missed"},
    {"_index": "orders", "@timestamp": "not a date", "message": f"{marker} refused"},
]
success, errors = helpers.bulk(client, actions, refresh="wait_for", raise_on_error=False)
failed = [{"status": next(iter(error.values()))["status"], "type": next(iter(error.values()))["error"]["type"]}
          for error in errors]
print(json.dumps({"success": success, "failed": failed}))
client.close()
