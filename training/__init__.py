"""Switchboard training."""
