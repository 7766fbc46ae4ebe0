"""HTTP authentication and authorization shared by every service: JWT tokens whose `eh` claim
scopes what their holder may read, publish and administer."""
