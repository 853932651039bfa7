"""Decision store revisions; Alembic loads them by path, in revision order."""
