"""Switchboard features."""
