"""Who may open what: logins, tokens, sites and scopes, open streams."""
