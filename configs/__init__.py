"""Switchboard configs."""
