"""The local Elasticsearch node: distribution, Java, and the node process."""

from ragrec.es_node.node import LocalNode, NodeError, NodeStatus

__all__ = ["LocalNode", "NodeError", "NodeStatus"]
