"""The JSON API for other programs (/api/v1/): django-ninja over the product's own readers
and actions (realtime.violations.queries, realtime.console.actions and shelves, the event
log's replay), so a program sees and does what the pages and the streams do."""
