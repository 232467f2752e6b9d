"""Stand-ins for dependencies the tests can stop and restart without touching the shared ones."""
