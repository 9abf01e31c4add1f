"""The orchestrator as OAuth 2.0 authorization server (client credentials, JWT access
tokens, introspection, revocation), built on Authlib. Mount it with ``init_oauth(app)``."""

from app.oauth.routes import init_oauth, oauth_bp

__all__ = ["init_oauth", "oauth_bp"]
