"""HTTP blueprints: thin views that parse, call one service, and shape the answer."""
