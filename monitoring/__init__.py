"""Switchboard monitoring."""
