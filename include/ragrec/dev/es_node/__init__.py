"""The local Elasticsearch node: distribution, Java, and the node process."""

from ragrec.dev.es_node.node import LocalNode, NodeError, NodeStatus

__all__ = ["LocalNode", "NodeError", "NodeStatus"]
