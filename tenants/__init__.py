"""Tenancy: registry, API keys, staff users, JWT, scopes and roles."""
