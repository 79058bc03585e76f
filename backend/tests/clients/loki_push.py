"""Sends log lines to Vigil with python-logging-loki (Loki's JSON push API, one request a line).

Environment: VIGIL_URL, VIGIL_TOKEN, MARKER.
"""
import logging
import os

import logging_loki

handler = logging_loki.LokiHandler(
    url=os.environ["VIGIL_URL"] + "/loki/api/v1/push",
    tags={"service_name": "billing", "host": "bill-1"},
    version="1",
)
# The library has no bearer option: its session carries the header.
handler.emitter.session.headers["Authorization"] = "Bearer " + os.environ["VIGIL_TOKEN"]
# Anything but 204 is printed as a logging error and the script goes on: fail it instead.
def fail(record):
    raise


handler.handleError = fail
log = logging.getLogger("billing")
log.setLevel(logging.DEBUG)
log.addHandler(handler)
log.propagate = False
marker = os.environ["MARKER"]
log.info("%s invoice sent", marker)
log.warning("%s card expires soon", marker, extra={"tags": {"region": "eu-1"}})
log.error("%s charge declined: \"insufficient funds\" for żółw", marker)
handler.close()
