"""HTTP layer: one flask-smorest Blueprint per resource, schemas beside the routes."""
