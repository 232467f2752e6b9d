"""marshmallow schemas: what requests may contain and what responses look like."""
