"""The operator's pages and actions."""
