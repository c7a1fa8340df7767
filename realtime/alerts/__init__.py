"""Alerts for people who are not at the screen: rules, contacts, the outbox and its worker."""
