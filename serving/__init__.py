"""Switchboard serving."""
