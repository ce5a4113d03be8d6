"""``python -m exec_server_protocol schema`` prints the protocol's JSON Schema."""

import json
import sys

from .registry import json_schema

if __name__ == "__main__":
    if sys.argv[1:] != ["schema"]:
        sys.exit("usage: python -m exec_server_protocol schema")
    sys.stdout.write(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
