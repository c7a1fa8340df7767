"""Signed webhooks for programs: every change a subscription covers, POSTed as the Standard
Webhooks specification says, delivered from the event log by the alerts' worker."""
