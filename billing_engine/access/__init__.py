"""Access: API keys (org and staff), who a credential names, and the policy every route keeps."""
